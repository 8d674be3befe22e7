import { afterEach, describe, expect, it, vi } from "vitest";
import { offlineProvider } from "../agents/llm/offline/offlineProvider.js";
import { offlineLatency } from "../agents/llm/providers.js";
import { ProviderConfigError } from "../agents/llm/errors.js";
import { Limiter } from "../agents/llm/retry.js";
import type { ProviderRequest } from "../agents/llm/types.js";

// A task the stand-in has no answer for: it fails, but only once its simulated latency has passed.
const request = (signal?: AbortSignal): ProviderRequest => ({
  task: "bench.none", messages: [], jsonSchema: {}, data: {}, by: { agent: "bench", node: "test" }, ...(signal ? { signal } : {}),
});

describe("the offline stand-in with a model's latency (SWARM_OFFLINE_LATENCY_MS)", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("reads a fixed time or a range, and says what is wrong with anything else", () => {
    expect(offlineLatency(undefined)).toBeUndefined();
    expect(offlineLatency("1000")).toEqual({ minMs: 1000, maxMs: 1000 });
    expect(offlineLatency("500-1500")).toEqual({ minMs: 500, maxMs: 1500 });
    for (const bad of ["1s", "-5", "1500-500"]) {
      expect(() => offlineLatency(bad), bad).toThrow(ProviderConfigError);
    }
    expect(() => offlineLatency("1s")).toThrow(/SWARM_OFFLINE_LATENCY_MS=1s: milliseconds/);
  });

  it("answers after its latency on the simulated clock, calls beyond the endpoint's concurrency waiting their turn", async () => {
    vi.useFakeTimers();
    const provider = offlineProvider({ minMs: 1000, maxMs: 1000, limiter: new Limiter(2) });
    const ended: number[] = [];
    const calls = [0, 1, 2].map((i) => provider.complete(request()).catch(() => void ended.push(i)));
    await vi.advanceTimersByTimeAsync(999);
    expect(ended).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(ended.sort()).toEqual([0, 1]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(ended.sort()).toEqual([0, 1, 2]);
    await Promise.all(calls);
  });

  it("draws each wait from the range, and stops waiting when the call is aborted", async () => {
    vi.useFakeTimers();
    const provider = offlineProvider({ minMs: 500, maxMs: 1500, limiter: new Limiter(4), random: () => 0.25 });
    let done = false;
    const call = provider.complete(request()).catch(() => (done = true));
    await vi.advanceTimersByTimeAsync(749);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(done).toBe(true);
    await call;

    const stop = new AbortController();
    const aborted = provider.complete(request(stop.signal));
    stop.abort(new Error("stopping"));
    await expect(aborted).rejects.toThrow("stopping");
  });
});
