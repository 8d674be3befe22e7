import { afterEach, describe, expect, it, vi } from "vitest";
import { sayingHowLong } from "../agents/coder/longRun.js";

describe("a long run says how far along it is", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("every 30 s of the simulated clock, against its limit, and not once it has ended", async () => {
    vi.useFakeTimers();
    const said: string[] = [];
    let finish!: (v: string) => void;
    const waiting = sayingHowLong(new Promise<string>((r) => (finish = r)), "run_1 running", 600_000, async (t) => void said.push(t));
    await vi.advanceTimersByTimeAsync(95_000);
    expect(said).toEqual(["run_1 running: 30 s so far, of at most 600 s", "run_1 running: 60 s so far, of at most 600 s", "run_1 running: 90 s so far, of at most 600 s"]);
    finish("done");
    await expect(waiting).resolves.toBe("done");
    await vi.advanceTimersByTimeAsync(120_000);
    expect(said).toHaveLength(3);
  });

  it("passes the run's failure on, and a progress line that cannot be sent is not one", async () => {
    vi.useFakeTimers();
    let fail!: (e: Error) => void;
    const waiting = sayingHowLong(new Promise<never>((_, j) => (fail = j)), "baseline", 60_000, () => Promise.reject(new Error("bus away")), 1_000);
    await vi.advanceTimersByTimeAsync(3_000);
    fail(new Error("exit code 1"));
    await expect(waiting).rejects.toThrow("exit code 1");
  });
});
