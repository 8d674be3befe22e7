import { join } from "node:path";
import type { Logger } from "pino";
import type { Bus } from "../../bus/connection.js";
import type { RunConfig } from "../../bus/schemas.js";
import type { AgentContext } from "../../agents/runtime/agentContext.js";
import { createLlm } from "../../agents/llm/client.js";
import { offlineProvider } from "../../agents/llm/offline/offlineProvider.js";
import type { LlmProvider } from "../../agents/llm/types.js";

/**
 * An agent's context on a node of its own (its own workspace under `dir`), answered by the offline stand-in,
 * recording each model call as `<task> <label>`; `stopAt` stops the node (as a killed process would) when that
 * call comes.
 */
export function recordingNode(
  opts: { bus: Bus; runId: string; config: RunConfig; log: Logger; dir: string; agent: string; label: (data: Record<string, unknown>) => string | undefined },
  name: string,
  stopAt?: (task: string, data: Record<string, unknown>) => boolean,
) {
  const controller = new AbortController();
  const tasks: string[] = [];
  const progress: string[] = [];
  const base = offlineProvider();
  const provider: LlmProvider = {
    ...base,
    async complete(req) {
      const data = req.data as Record<string, unknown>;
      const label = opts.label(data);
      tasks.push(`${req.task}${label ? ` ${label}` : ""}`);
      if (stopAt?.(req.task, data)) controller.abort();
      return base.complete(req);
    },
  };
  const by = { agent: opts.agent, node: name };
  const ctx: AgentContext = {
    bus: opts.bus, runId: opts.runId, config: opts.config, by, log: opts.log, signal: controller.signal, workRoot: join(opts.dir, name),
    llm: createLlm(provider, { bus: opts.bus, runId: opts.runId, by, log: opts.log }),
    progress: async (text) => void progress.push(text),
  };
  return { ctx, tasks, progress };
}
