import type { Bus } from "../../bus/connection.js";
import { publishProgress } from "../../bus/events.js";
import type { Logger } from "../../bus/logger.js";
import type { Actor, RunConfig } from "../../bus/schemas.js";
import type { Llm } from "../llm/types.js";

/** What an agent's implementations get for one job: where it runs, what the run asked for, and its model. */
export interface AgentContext {
  bus: Bus;
  runId: string;
  config: RunConfig;
  by: Actor;
  log: Logger;
  llm: Llm;
  signal: AbortSignal;
  /** Folder on this node for the job's files. */
  workRoot: string;
  /** The GPU this job may use, on a node that has GPUs. */
  gpu?: number;
  /** A progress line for the person watching the swarm. */
  progress(text: string, ideaId?: string): Promise<void>;
}

export function progressFn(bus: Bus, runId: string, by: Actor, log: Logger) {
  return async (text: string, ideaId?: string) => {
    log.debug({ ideaId }, text);
    await publishProgress(bus, { runId, by, text, ...(ideaId ? { ideaId } : {}) }).catch((err: Error) =>
      log.warn({ err: err.message }, "could not publish progress"),
    );
  };
}
