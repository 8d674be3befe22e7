import { z } from "zod";
import { Evidence, Idea, VerdictKind } from "../../bus/schemas.js";
import { answerAs, defineTask, jsonBlock } from "../llm/task.js";

const Decision = z.object({ verdict: VerdictKind, reason: z.string().min(1) });

export const think = defineTask({
  name: "critic.think",
  data: z.object({ idea: Idea, round: z.number().int(), maxRounds: z.number().int(), queries: z.array(z.string()), found: z.array(Evidence) }),
  answer: z.object({ thought: z.string(), query: z.string().min(1).nullable(), decision: Decision.nullable() }),
  render: (d) => [
    {
      role: "system",
      content:
        "You are a demanding reviewer judging whether a research idea is novel. You search the literature before you judge, and you judge on evidence, not on impressions.",
    },
    {
      role: "user",
      content: [
        `The idea:\n${jsonBlock(d.idea)}`,
        `Search round ${d.round + 1} of at most ${d.maxRounds}. Queries so far: ${d.queries.length ? d.queries.join(" | ") : "none"}.`,
        `Papers found so far:\n${jsonBlock(d.found)}`,
        'Either give one more search query (decision null), or decide (query null): "novel" if no paper found does this, "not novel" if one does, "revise" if the idea is close to a paper but could be reframed to ask something new — then say how in the reason.',
        answerAs(`{"thought": "...", "query": "search terms" | null, "decision": {"verdict": "novel" | "not novel" | "revise", "reason": "..."} | null}`),
      ].join("\n\n"),
    },
  ],
});

export const decide = defineTask({
  name: "critic.decide",
  data: z.object({ idea: Idea, queries: z.array(z.string()), found: z.array(Evidence) }),
  answer: Decision,
  render: (d) => [
    { role: "system", content: "You are a demanding reviewer judging whether a research idea is novel, on the evidence found." },
    {
      role: "user",
      content: [
        `The idea:\n${jsonBlock(d.idea)}`,
        `Your searches (${d.queries.join(" | ") || "none"}) found:\n${jsonBlock(d.found)}`,
        "The search rounds are over: decide now.",
        answerAs(`{"verdict": "novel" | "not novel" | "revise", "reason": "..."}`),
      ].join("\n\n"),
    },
  ],
});
