import { ProviderConfigError } from "./errors.js";
import type { LlmProvider } from "./types.js";
import { offlineProvider } from "./offline/offlineProvider.js";

export interface LlmChoice {
  provider: string;
  model: string;
}

/**
 * Which model a run uses: `--llm provider[/model]`, else the environment, else offline. With no key in the
 * environment the swarm runs offline and says so.
 */
export function chooseLlm(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): LlmChoice {
  const spec = flag ?? env.SWARM_LLM;
  if (!spec) return { provider: "offline", model: "offline" };
  const [provider, ...rest] = spec.split("/");
  return { provider: provider!, model: rest.join("/") || (provider === "offline" ? "offline" : "") };
}

export function createProvider(choice: LlmChoice): LlmProvider {
  switch (choice.provider) {
    case "offline":
      return offlineProvider();
    default:
      throw new ProviderConfigError(`provider "${choice.provider}" is not available in this version`, {
        hint: "use --llm offline; the OpenAI, Anthropic and OpenAI-compatible providers come with the real-models milestone",
      });
  }
}
