/**
 * How long a read made after one server of a local 3-server cluster was killed takes: through a consumer of its
 * own (how the swarm read the conversation and the object store before; Debian's nats-server 2.9.10 places about
 * one new consumer in three on the dead server), and by sequence from the stream's leader (bus/storedReads.ts),
 * side by side. Each read is of a message (or a 300 KiB artifact) stored just before it. Prints figures; not run
 * by the tests.
 *
 *   npm run bench:reads-after-kill [-- --reads 24]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { DeliverPolicy } from "@nats-io/jetstream";
import { pino } from "pino";
import { z } from "zod";
import { startLocalCluster } from "../../bus/cluster.js";
import { connectBus } from "../../bus/connection.js";
import { watchEvents } from "../../bus/events.js";
import { getArtifact, putArtifact } from "../../bus/artifacts.js";
import { STREAMS } from "../../bus/subjects.js";
import { retryBus } from "../../bus/retryBus.js";

const { values } = parseArgs({ options: { reads: { type: "string", default: "24" } } });
const { reads } = z.object({ reads: z.coerce.number().int().min(1) }).parse(values);

const log = pino({ level: "silent" });
const dir = await mkdtemp(join(tmpdir(), "bench-kill-"));
const cluster = await startLocalCluster({ size: 3, dir, log });
const bus = await connectBus(cluster.urls[0]!, { name: "bench", log });
const subject = "sci.bench.conv.progress";
const blob = new Uint8Array(300 * 1024).map((_, i) => i % 251);

/** The old conversation reader: an ordered consumer of its own, from the first message on, made again while making it times out. */
async function consumerRead(i: number): Promise<void> {
  const messages = await retryBus("a consumer", async () => {
    const consumer = await bus.js.consumers.get(STREAMS.conversation.name, { filter_subjects: subject, deliver_policy: DeliverPolicy.All });
    return consumer.consume();
  });
  for await (const m of messages) if (m.json<{ i: number }>().i === i) break;
  await messages.close();
}

async function sequenceRead(i: number): Promise<void> {
  const stream = await watchEvents(bus, subject, z.object({ i: z.number() }), log);
  for await (const { value } of stream) if (value.i === i) break;
  await stream.close();
}

/** Milliseconds of each read, each of what was stored just before it. */
async function time(read: (i: number) => Promise<unknown>, store: (i: number) => Promise<unknown>): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < reads; i++) {
    await store(i);
    const start = performance.now();
    await read(i);
    ms.push(performance.now() - start);
  }
  return ms;
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;
const row = (what: string, xs: number[]) =>
  `${what.padEnd(46)} p50 ${pct(xs, 0.5).toFixed(1).padStart(8)} ms   p95 ${pct(xs, 0.95).toFixed(1).padStart(8)} ms   max ${Math.max(...xs).toFixed(1).padStart(8)} ms   over 1 s: ${xs.filter((x) => x > 1000).length}`;

try {
  let n = 0;
  const say = () => bus.js.publish(subject, JSON.stringify({ i: n++ }));
  // Kill a server the bench's connection is not on, and let the streams it led elect new leaders.
  const victim = cluster.servers.find((s) => !cluster.urls[0]!.endsWith(`:${s.port}`))!;
  await victim.kill();
  await say();
  await sequenceRead(0);
  await putArtifact(bus, "bench/warm", blob);
  await getArtifact(bus, "bench/warm");

  const byConsumer = await time(() => consumerRead(n - 1), () => say());
  const bySequence = await time(() => sequenceRead(n - 1), () => say());
  const blobByConsumer = await time((i) => retryBus("a download", () => bus.obj.getBlob(`bench/c${i}`)), (i) => putArtifact(bus, `bench/c${i}`, blob));
  const blobBySequence = await time((i) => getArtifact(bus, `bench/s${i}`), (i) => putArtifact(bus, `bench/s${i}`, blob));
  process.stdout.write(`Reads made after 1 of 3 servers was killed (${reads} each, nats-server ${bus.nc.info?.version} on loopback):\n`);
  process.stdout.write(`${row("conversation, through a consumer of its own", byConsumer)}\n`);
  process.stdout.write(`${row("conversation, by sequence from the leader", bySequence)}\n`);
  process.stdout.write(`${row("300 KiB artifact, through a consumer", blobByConsumer)}\n`);
  process.stdout.write(`${row("300 KiB artifact, by sequence from the leader", blobBySequence)}\n`);
} finally {
  await bus.close();
  await cluster.stop();
  await rm(dir, { recursive: true, force: true });
}
