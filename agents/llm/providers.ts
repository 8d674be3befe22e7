import type { Bus } from "../../bus/connection.js";
import type { Logger } from "../../bus/logger.js";
import { ProviderConfigError } from "./errors.js";
import { modelInfo } from "./models.js";
import { offlineProvider } from "./offline/offlineProvider.js";
import { openAiProvider } from "./openaiProvider.js";
import { anthropicProvider } from "./anthropicProvider.js";
import { replayProvider } from "./replayProvider.js";
import type { LlmProvider } from "./types.js";
import { endpointLimiter } from "./endpoints.js";
import { z } from "zod";

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

const LatencySpec = z
  .string()
  .regex(/^\d+(-\d+)?$/, "milliseconds, fixed (1000) or a range (500-1500)")
  .transform((v) => {
    const [min, max = min] = v.split("-").map(Number) as [number, number?];
    return { minMs: min, maxMs: max };
  })
  .refine((l) => l.maxMs >= l.minMs, "a range's end is below its start");

/** SWARM_OFFLINE_LATENCY_MS: how long the offline stand-in takes to answer, to measure the swarm against a model's latency. */
export function offlineLatency(spec: string | undefined): { minMs: number; maxMs: number } | undefined {
  if (spec === undefined || spec === "") return undefined;
  const parsed = LatencySpec.safeParse(spec.trim());
  if (!parsed.success) {
    throw new ProviderConfigError(`SWARM_OFFLINE_LATENCY_MS=${spec}: ${parsed.error.issues[0]?.message}`, { hint: "e.g. SWARM_OFFLINE_LATENCY_MS=1000 (every answer after 1 s) or 500-1500 (anywhere between)" });
  }
  return parsed.data;
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
  const info = modelInfo(choice.provider, choice.model);
  const need = (name: string, what: string): string => {
    const v = env[name];
    if (!v) throw new ProviderConfigError(`${what} is not set`, { hint: `export ${name}=… on every node that runs agents with ${choice.provider}` });
    return v;
  };
  switch (choice.provider) {
    case "offline": {
      const latency = offlineLatency(env.SWARM_OFFLINE_LATENCY_MS);
      // The stand-in's simulated calls share one endpoint's limit, as real ones do.
      return offlineProvider(latency ? { ...latency, limiter: endpointLimiter({ provider: "offline" }, env) } : undefined);
    }
    case "replay":
      return replayProvider(ctx.bus, ctx.runId, choice.model);
    case "openai":
      return openAiProvider({
        name: "openai", model: choice.model, apiKey: need("OPENAI_API_KEY", "OPENAI_API_KEY"),
        ...(env.OPENAI_BASE_URL ? { baseURL: env.OPENAI_BASE_URL } : {}), info, timeoutMs, log: ctx.log,
        limiter: endpointLimiter({ provider: "openai", baseURL: env.OPENAI_BASE_URL }, env),
      });
    case "openai-compatible": {
      const baseURL = env.SWARM_BASE_URL ?? need("OPENAI_BASE_URL", "the server's base URL (OPENAI_BASE_URL or SWARM_BASE_URL)");
      return openAiProvider({
        name: "openai-compatible", model: choice.model,
        apiKey: env.SWARM_API_KEY ?? env.OPENAI_API_KEY ?? "none",
        baseURL, info, timeoutMs, log: ctx.log, limiter: endpointLimiter({ provider: "openai-compatible", baseURL }, env),
      });
    }
    case "anthropic":
      return anthropicProvider({
        model: choice.model, apiKey: need("ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"),
        ...(env.ANTHROPIC_BASE_URL ? { baseURL: env.ANTHROPIC_BASE_URL } : {}), info, timeoutMs, log: ctx.log,
        limiter: endpointLimiter({ provider: "anthropic", baseURL: env.ANTHROPIC_BASE_URL }, env),
      });
    default:
      throw new ProviderConfigError(`unknown provider "${choice.provider}"`, { hint: `use one of ${PROVIDERS.join(", ")}` });
  }
}
