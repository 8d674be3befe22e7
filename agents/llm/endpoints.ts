import { readFileSync } from "node:fs";
import { z } from "zod";
import { ProviderConfigError } from "./errors.js";
import { Limiter } from "./retry.js";

/**
 * How many model calls a process makes at once, per provider endpoint. Every call to one endpoint from this
 * process (whichever agent makes it) holds a place in that endpoint's one Limiter. Unless the configuration
 * names a limit for the endpoint, it is the number of job slots the process hosts, so that no slot waits for
 * another's call: five reviewer slots make five calls at once.
 */

/** `llmConcurrency` in config/defaults.json: endpoint (a provider's name, or a base URL) → calls at once. */
export const ConcurrencyConfig = z.record(z.string().min(1), z.number().int().min(1).max(1024));
export type ConcurrencyConfig = z.infer<typeof ConcurrencyConfig>;

const DEFAULTS_FILE = new URL("../../config/defaults.json", import.meta.url);

let configured: ConcurrencyConfig | undefined;

/** The configured limits, read once from config/defaults.json. */
export function configuredConcurrency(): ConcurrencyConfig {
  if (configured) return configured;
  const parsed = z.object({ llmConcurrency: ConcurrencyConfig.default({}) }).safeParse(JSON.parse(readFileSync(DEFAULTS_FILE, "utf8")));
  if (!parsed.success) {
    throw new ProviderConfigError(`config/defaults.json: llmConcurrency ${parsed.error.issues[0]?.message}`, {
      hint: 'give each endpoint a whole number of calls at once, e.g. "llmConcurrency": {"openai": 16, "http://localhost:11434/v1": 2}',
    });
  }
  return (configured = parsed.data.llmConcurrency);
}

/** Job slots started in this process and not yet stopped (agents/node.ts counts them in). */
let slotsHosted = 0;

/** Counts `n` job slots in for as long as they are served; the returned function counts them out. */
export function hostSlots(n: number): () => void {
  slotsHosted += n;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    slotsHosted -= n;
  };
}

export interface Endpoint {
  provider: string;
  /** The endpoint's base URL; a provider's own service when absent. */
  baseURL?: string | undefined;
}

const limiters = new Map<string, Limiter>();

/**
 * The calls-at-once limit for an endpoint: `SWARM_LLM_CONCURRENCY` for every endpoint of this process when set,
 * else the configuration's entry for the base URL, else for the provider, else the slots this process hosts
 * (at least one). Read at every call, so slots started later raise it.
 */
export function concurrencyFor(endpoint: Endpoint, env: NodeJS.ProcessEnv = process.env, config: ConcurrencyConfig = configuredConcurrency()): number {
  const override = env.SWARM_LLM_CONCURRENCY;
  if (override !== undefined && override !== "") {
    const n = Number(override);
    if (!Number.isInteger(n) || n < 1) throw new ProviderConfigError(`SWARM_LLM_CONCURRENCY=${override} is not a whole number of calls`, { hint: "e.g. SWARM_LLM_CONCURRENCY=8, or leave it unset" });
    return n;
  }
  return (endpoint.baseURL ? config[endpoint.baseURL] : undefined) ?? config[endpoint.provider] ?? Math.max(1, slotsHosted);
}

/** The one Limiter of an endpoint in this process. */
export function endpointLimiter(endpoint: Endpoint, env: NodeJS.ProcessEnv = process.env): Limiter {
  const key = `${endpoint.provider} ${endpoint.baseURL ?? ""}`;
  let limiter = limiters.get(key);
  if (!limiter) {
    // Asked once here, so that a bad setting fails making the provider rather than a call.
    concurrencyFor(endpoint, env);
    limiter = new Limiter(() => concurrencyFor(endpoint, env));
    limiters.set(key, limiter);
  }
  return limiter;
}
