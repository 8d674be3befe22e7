import type { LlmProvider, ProviderAnswer, ProviderRequest } from "../types.js";
import { ModelBehaviorError } from "../errors.js";
import { responderFor } from "./registry.js";
import { sleep, type Limiter } from "../retry.js";

const estimateTokens = (text: string) => Math.ceil(text.length / 4);

/** Answers a task from its data the way the offline stand-in does; undefined for a task it does not know. */
export function offlineAnswer(task: string, data: unknown): unknown {
  const responder = responderFor(task);
  if (!responder) throw new ModelBehaviorError(`the offline provider has no answer for task "${task}"`);
  const parsed = responder.task.data.safeParse(data);
  if (!parsed.success) {
    throw new ModelBehaviorError(`task "${task}" was asked with data that does not fit it: ${parsed.error.issues.map((i) => i.path.join(".") + ": " + i.message).join("; ")}`);
  }
  return responder.answer(parsed.data as never);
}

/**
 * A model's latency to stand in for (`SWARM_OFFLINE_LATENCY_MS`): every answer waits between `minMs` and `maxMs`,
 * holding a place in `limiter` as a request to a real provider holds one, so that a benchmark takes the real path.
 */
export interface OfflineLatency {
  minMs: number;
  maxMs: number;
  limiter: Limiter;
  /** Injected by tests: where in [0, 1) between minMs and maxMs each wait falls. */
  random?: () => number;
}

/**
 * A deterministic stand-in for a model: it answers each task from the request's data, never from a
 * hidden script, so its ideas change the template's real knobs and its paper reports the real results.
 * Token counts are estimates (4 characters a token); it costs nothing.
 */
export function offlineProvider(latency?: OfflineLatency): LlmProvider {
  return {
    name: "offline",
    model: "offline",
    disclosure: "No language model wrote this paper: scientist-swarm's offline stand-in generated its text deterministically from the run's real results.",
    async complete(req: ProviderRequest): Promise<ProviderAnswer> {
      req.signal?.throwIfAborted();
      if (latency) {
        const ms = latency.minMs + (latency.maxMs - latency.minMs) * (latency.random ?? Math.random)();
        await latency.limiter.run(() => sleep(ms, req.signal));
      }
      const json = offlineAnswer(req.task, req.data);
      const text = JSON.stringify(json);
      return {
        text,
        json,
        usage: { inputTokens: estimateTokens(req.messages.map((m) => m.content).join("\n")), outputTokens: estimateTokens(text), cachedTokens: 0, estimated: true },
      };
    },
    async check() {},
  };
}

