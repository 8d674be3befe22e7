/**
 * A worker process for the claim and lease tests, to be stopped and killed: it serves review jobs (unless
 * SERVE=0) with a handler that takes HANDLER_MS and writes "<node> start|end|aborted <jobId>" lines to
 * COUNT_FILE, and holds the lease of LEASE_RUN if given. It prints "ready <instanceId>" once it is serving.
 */
import { appendFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { z } from "zod";
import { connectBus } from "../../bus/connection.js";
import { holdRunLease } from "../../bus/lease.js";
import { rootLogger } from "../../bus/logger.js";
import { serveJobs } from "../../bus/workQueue.js";
import type { Review } from "../../bus/schemas.js";

const env = z
  .object({
    NATS_URL: z.string(),
    WORKER_NODE: z.string(),
    COUNT_FILE: z.string().optional(),
    HANDLER_MS: z.coerce.number().int().min(0).default(0),
    LEASE_RUN: z.string().optional(),
    SERVE: z.enum(["0", "1"]).default("1"),
  })
  .parse(process.env);

const log = rootLogger().child({ node: env.WORKER_NODE });
const bus = await connectBus(env.NATS_URL, { log });
const note = (what: string, jobId: string) => env.COUNT_FILE && appendFileSync(env.COUNT_FILE, `${env.WORKER_NODE} ${what} ${jobId}\n`);

if (env.LEASE_RUN) await holdRunLease(bus, env.LEASE_RUN, { log, node: env.WORKER_NODE });
if (env.SERVE === "1") {
  serveJobs(
    bus,
    "review",
    async (job, ctx) => {
      note("start", job.jobId);
      try {
        await sleep(env.HANDLER_MS, undefined, { signal: ctx.signal });
      } catch (err) {
        note("aborted", job.jobId);
        throw err;
      }
      note("end", job.jobId);
      const review: Review = {
        Summary: env.WORKER_NODE, Strengths: ["a"], Weaknesses: ["b"], Originality: 2, Quality: 2, Clarity: 3, Significance: 2,
        Questions: [], Limitations: [], Ethical_Concerns: false, Soundness: 2, Presentation: 3, Contribution: 2,
        Overall: 4, Confidence: 3, Decision: "Reject",
      };
      return { review, reflections: 0 };
    },
    { concurrency: 1, by: { agent: "reviewer", node: env.WORKER_NODE }, log },
  );
}
process.stdout.write(`ready ${bus.instanceId}\n`);
