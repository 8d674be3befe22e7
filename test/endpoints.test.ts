import { describe, expect, it } from "vitest";
import { concurrencyFor, hostSlots } from "../agents/llm/endpoints.js";
import { Limiter } from "../agents/llm/retry.js";
import { ProviderConfigError } from "../agents/llm/errors.js";

const env = {} as NodeJS.ProcessEnv;

describe("calls at once per model endpoint", () => {
  it("is the slots this process hosts unless configured, and follows slots started and stopped", () => {
    // No slots in this test's process: one call at a time.
    expect(concurrencyFor({ provider: "openai" }, env, {})).toBe(1);
    const release = hostSlots(5);
    const more = hostSlots(2);
    expect(concurrencyFor({ provider: "openai" }, env, {})).toBe(7);
    release();
    release();
    expect(concurrencyFor({ provider: "openai" }, env, {})).toBe(2);
    more();
    expect(concurrencyFor({ provider: "openai" }, env, {})).toBe(1);
  });

  it("takes the configuration's entry for the base URL first, then for the provider, and the environment over both", () => {
    const config = { openai: 16, "http://localhost:11434/v1": 2 };
    expect(concurrencyFor({ provider: "openai-compatible", baseURL: "http://localhost:11434/v1" }, env, config)).toBe(2);
    expect(concurrencyFor({ provider: "openai" }, env, config)).toBe(16);
    expect(concurrencyFor({ provider: "openai", baseURL: "https://proxy.example/v1" }, env, config)).toBe(16);
    expect(concurrencyFor({ provider: "openai" }, { SWARM_LLM_CONCURRENCY: "3" }, config)).toBe(3);
    expect(() => concurrencyFor({ provider: "openai" }, { SWARM_LLM_CONCURRENCY: "many" }, config)).toThrow(ProviderConfigError);
  });
});

describe("Limiter", () => {
  /** Starts `n` calls that each wait to be let go; says how many are running. */
  function calls(limiter: Limiter, n: number) {
    let running = 0;
    const release: (() => void)[] = [];
    const done = Array.from({ length: n }, () =>
      limiter.run(async () => {
        running++;
        await new Promise<void>((r) => release.push(r));
        running--;
      }),
    );
    return { running: () => running, releaseOne: () => release.shift()?.(), done: Promise.all(done) };
  }
  const settle = () => new Promise((r) => setImmediate(r));

  it("runs at most its limit at once, in order", async () => {
    const c = calls(new Limiter(2), 5);
    await settle();
    expect(c.running()).toBe(2);
    c.releaseOne();
    await settle();
    expect(c.running()).toBe(2);
    for (let i = 0; i < 5; i++) {
      c.releaseOne();
      await settle();
    }
    await c.done;
  });

  it("lets more go at once when its limit is raised while calls wait", async () => {
    let limit = 1;
    const c = calls(new Limiter(() => limit), 4);
    await settle();
    expect(c.running()).toBe(1);
    limit = 4;
    c.releaseOne();
    await settle();
    expect(c.running()).toBe(3);
    for (let i = 0; i < 3; i++) c.releaseOne();
    await c.done;
  });
});
