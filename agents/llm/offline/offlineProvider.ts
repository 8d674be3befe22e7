import type { LlmProvider, LlmRequest, ProviderAnswer } from "../types.js";
import { ModelBehaviorError } from "../errors.js";
import { responderFor } from "./responders.js";

const estimateTokens = (text: string) => Math.ceil(text.length / 4);

/**
 * A deterministic stand-in for a model: it answers each task from the request's data, never from a
 * hidden script, so its ideas change the template's real knobs and its paper reports the real results.
 * Token counts are estimates (4 characters a token); it costs nothing.
 */
export function offlineProvider(): LlmProvider {
  return {
    name: "offline",
    model: "offline",
    disclosure: "No language model wrote this paper: scientist-swarm's offline stand-in generated its text deterministically from the run's real results.",
    async complete(req: LlmRequest): Promise<ProviderAnswer> {
      const responder = responderFor(req.task);
      if (!responder) throw new ModelBehaviorError(`the offline provider has no answer for task "${req.task}"`);
      const data = responder.task.data.safeParse(req.data);
      if (!data.success) {
        throw new ModelBehaviorError(`task "${req.task}" was asked with data that does not fit it: ${data.error.issues.map((i) => i.path.join(".") + ": " + i.message).join("; ")}`);
      }
      req.signal?.throwIfAborted();
      const raw = responder.answer(data.data as never);
      return {
        raw,
        usage: {
          inputTokens: estimateTokens(req.messages.map((m) => m.content).join("\n")),
          outputTokens: estimateTokens(JSON.stringify(raw)),
          cachedTokens: 0,
          estimated: true,
        },
      };
    },
  };
}
