import { hostname } from "node:os";
import { z } from "zod";
import type { Bus } from "../../bus/connection.js";
import type { Logger } from "../../bus/logger.js";
import { storedKeys } from "../../bus/storedReads.js";
import { kvKeys } from "../../bus/subjects.js";

/** What a node tells the swarm about itself, in KV under `nodes.<nodeId>`, refreshed while it lives. */
export const NodeAdvert = z.object({
  nodeId: z.string(),
  host: z.string(),
  roles: z.record(z.string(), z.number()),
  gpus: z.array(z.object({ index: z.number(), name: z.string(), memoryMb: z.number(), simulated: z.boolean() })),
  startedAt: z.string(),
  seenAt: z.string(),
});
export type NodeAdvert = z.infer<typeof NodeAdvert>;
export const advertKey = kvKeys.advert;
/** How often a node refreshes its advert; one not refreshed for three times this is gone. */
export const ADVERT_EVERY_MS = 15_000;

/** The nodes that advertised themselves recently. */
export async function listNodes(bus: Bus): Promise<NodeAdvert[]> {
  const out: NodeAdvert[] = [];
  for (const key of await storedKeys(bus, "nodes.>")) {
    const entry = await bus.kv.get(key);
    if (!entry || entry.operation !== "PUT") continue;
    const parsed = NodeAdvert.safeParse(entry.json());
    if (parsed.success && Date.now() - Date.parse(parsed.data.seenAt) < 3 * ADVERT_EVERY_MS) out.push(parsed.data);
  }
  return out;
}

export function defaultNodeId(): string {
  return `${hostname()}-${process.pid}`;
}

/**
 * Keeps this node's advert fresh in KV until `stop`; stopping removes it, best effort, without waiting for a bus
 * that is away (an advert that stays expires by its seenAt).
 */
export async function advertiseNode(bus: Bus, advert: Omit<NodeAdvert, "seenAt" | "host">, log: Logger): Promise<{ stop(): Promise<void> }> {
  const put = () =>
    bus.kv
      .put(advertKey(advert.nodeId), JSON.stringify({ ...advert, host: hostname(), seenAt: new Date().toISOString() } satisfies NodeAdvert))
      .catch((err: Error) => log.warn({ err: err.message }, "could not advertise this node"));
  await put();
  const timer = setInterval(() => void put(), ADVERT_EVERY_MS);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await Promise.race([bus.kv.delete(advertKey(advert.nodeId)).catch(() => undefined), new Promise((r) => setTimeout(r, 2000).unref())]);
    },
  };
}
