import type { Bus } from "../../bus/connection.js";
import type { Logger } from "../../bus/logger.js";
import { ProviderConfigError } from "./errors.js";
import { modelInfo } from "./models.js";
import { offlineProvider } from "./offline/offlineProvider.js";
import { openAiProvider } from "./openaiProvider.js";
import { anthropicProvider } from "./anthropicProvider.js";
import { replayProvider } from "./replayProvider.js";
import type { LlmProvider } from "./types.js";

export interface LlmChoice {
  provider: string;
  model: string;
}

export const PROVIDERS = ["offline", "openai", "anthropic", "openai-compatible"] as const;
const DEFAULT_MODEL: Record<string, string> = { offline: "offline", openai: "gpt-4o-2024-08-06", anthropic: "claude-3-5-sonnet-20241022" };

/** `provider[/model]` → a choice; the model defaults per provider, except for compatible servers. */
export function parseLlm(spec: string): LlmChoice {
  const [provider, ...rest] = spec.trim().split("/");
  if (!(PROVIDERS as readonly string[]).includes(provider!)) {
    throw new ProviderConfigError(`unknown provider "${provider}"`, { hint: `use one of ${PROVIDERS.join(", ")}, e.g. --llm openai/gpt-4o-mini` });
  }
  const model = rest.join("/") || DEFAULT_MODEL[provider!];
  if (!model) throw new ProviderConfigError(`--llm ${provider} needs a model name`, { hint: `e.g. --llm ${provider}/llama3.1:8b` });
  return { provider: provider!, model };
}

export interface ProviderContext {
  bus: Bus;
  runId: string;
  log: Logger;
  env?: NodeJS.ProcessEnv;
}

/**
 * Builds a provider from the choice and this node's environment: keys and base URLs come from the
 * environment of each node, never from the bus.
 */
export function createProvider(choice: LlmChoice, ctx: ProviderContext): LlmProvider {
  const env = ctx.env ?? process.env;
  const timeoutMs = Number(env.SWARM_LLM_TIMEOUT_S ?? 300) * 1000;
  const concurrency = Number(env.SWARM_LLM_CONCURRENCY ?? 4);
  const info = modelInfo(choice.provider, choice.model);
  const need = (name: string, what: string): string => {
    const v = env[name];
    if (!v) throw new ProviderConfigError(`${what} is not set`, { hint: `export ${name}=… on every node that runs agents with ${choice.provider}` });
    return v;
  };
  switch (choice.provider) {
    case "offline":
      return offlineProvider();
    case "replay":
      return replayProvider(ctx.bus, ctx.runId, choice.model);
    case "openai":
      return openAiProvider({
        name: "openai", model: choice.model, apiKey: need("OPENAI_API_KEY", "OPENAI_API_KEY"),
        ...(env.OPENAI_BASE_URL ? { baseURL: env.OPENAI_BASE_URL } : {}), info, timeoutMs, concurrency, log: ctx.log,
      });
    case "openai-compatible":
      return openAiProvider({
        name: "openai-compatible", model: choice.model,
        apiKey: env.SWARM_API_KEY ?? env.OPENAI_API_KEY ?? "none",
        baseURL: env.SWARM_BASE_URL ?? need("OPENAI_BASE_URL", "the server's base URL (OPENAI_BASE_URL or SWARM_BASE_URL)"),
        info, timeoutMs, concurrency, log: ctx.log,
      });
    case "anthropic":
      return anthropicProvider({
        model: choice.model, apiKey: need("ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"),
        ...(env.ANTHROPIC_BASE_URL ? { baseURL: env.ANTHROPIC_BASE_URL } : {}), info, timeoutMs, concurrency, log: ctx.log,
      });
    default:
      throw new ProviderConfigError(`unknown provider "${choice.provider}"`, { hint: `use one of ${PROVIDERS.join(", ")}` });
  }
}
