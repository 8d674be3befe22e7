import type { Bus } from "../../bus/connection.js";
import { getArtifact } from "../../bus/artifacts.js";
import { LlmExchange } from "../../bus/schemas.js";
import { ModelBehaviorError } from "./errors.js";
import type { LlmProvider, ProviderAnswer, ProviderRequest } from "./types.js";
import { loggedContent, withoutImageLines } from "./images.js";

/** Where a replayed run's log is kept, so that nodes on any machine can read it. */
export const replayLogName = (runId: string) => `${runId}/replay/llm.jsonl`;

type Entry = LlmExchange & { used?: boolean };
const logs = new Map<string, Promise<Entry[]>>();

async function loadLog(bus: Bus, runId: string): Promise<Entry[]> {
  const text = new TextDecoder().decode(await getArtifact(bus, replayLogName(runId)));
  return text
    .split("\n")
    .filter(Boolean)
    .map((line) => LlmExchange.parse(JSON.parse(line)))
    .filter((e) => !e.error);
}

/**
 * Answers from an earlier run's llm.jsonl and calls nothing. A request takes the recorded answer of the
 * same agent, task and idea whose messages are identical (images as the log records them), else whose
 * messages are identical but for the images (a replay sees none), else the next unused one in recorded order
 * (timings in the results make some prompts differ from run to run).
 */
export function replayProvider(bus: Bus, runId: string, replayOf: string): LlmProvider {
  const entries = () => {
    let log = logs.get(runId);
    if (!log) logs.set(runId, (log = loadLog(bus, runId)));
    return log;
  };
  return {
    name: "replay",
    model: replayOf,
    disclosure: `This paper's text replays the answers recorded in run ${replayOf}; see that run for the model that wrote it.`,
    async complete(req: ProviderRequest): Promise<ProviderAnswer> {
      const all = await entries();
      const same = all.filter((e) => !e.used && e.by.agent === req.by.agent && e.task === req.task && e.ideaId === req.ideaId);
      const asLogged = req.messages.map((m) => ({ role: m.role, content: loggedContent(m) }));
      const blind = (messages: { role: string; content: string }[]) => JSON.stringify(messages.map(({ role, content }) => ({ role, content: withoutImageLines(content) })));
      const wanted = JSON.stringify(asLogged);
      const hit = same.find((e) => JSON.stringify(e.messages) === wanted) ?? same.find((e) => blind(e.messages) === blind(asLogged)) ?? same[0];
      if (!hit) throw new ModelBehaviorError(`run ${replayOf} recorded no ${req.by.agent} answer to ${req.task}${req.ideaId ? ` for ${req.ideaId}` : ""} left to replay`);
      hit.used = true;
      return { text: JSON.stringify(hit.answer), json: hit.answer, usage: { inputTokens: 0, outputTokens: 0, cachedTokens: 0, estimated: false } };
    },
    async check() {
      await entries();
    },
  };
}
