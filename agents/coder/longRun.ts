/** How often a run that is still going says so: a PyTorch run can take many minutes, with nothing else to show. */
export const RUN_TICK_MS = 30_000;

/**
 * Waits for a run, saying every `everyMs` how far along it is: its time so far against its wall-clock limit.
 * A progress line that cannot be sent is not the run's failure.
 */
export async function sayingHowLong<T>(run: Promise<T>, what: string, limitMs: number, say: (text: string) => Promise<void>, everyMs = RUN_TICK_MS): Promise<T> {
  const started = Date.now();
  const timer = setInterval(() => {
    const s = Math.round((Date.now() - started) / 1000);
    void say(`${what}: ${s} s so far, of at most ${Math.round(limitMs / 1000)} s`).catch(() => undefined);
  }, everyMs);
  try {
    return await run;
  } finally {
    clearInterval(timer);
  }
}
