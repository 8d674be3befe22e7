import type { Bus } from "../../bus/connection.js";
import { RunConfig } from "../../bus/schemas.js";
import { UserError } from "../../bus/errors.js";
import { kvKeys } from "../../bus/subjects.js";

const configKey = kvKeys.config;

export async function putRunConfig(bus: Bus, config: RunConfig): Promise<void> {
  await bus.kv.put(configKey(config.runId), JSON.stringify(RunConfig.parse(config)));
}

const cache = new Map<string, RunConfig>();

/** Any node reads what the run asked for from KV; a run's config never changes, so it is cached. */
export async function getRunConfig(bus: Bus, runId: string): Promise<RunConfig> {
  const hit = cache.get(runId);
  if (hit) return hit;
  const entry = await bus.kv.get(configKey(runId));
  if (!entry || entry.operation !== "PUT") {
    throw new UserError(`run ${runId} has no config on this NATS server`, { hint: "is this node connected to the swarm that started the run?" });
  }
  const config = RunConfig.parse(entry.json());
  cache.set(runId, config);
  return config;
}
