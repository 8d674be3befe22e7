/**
 * A client that tries what a role may not do, run on a simulated host by the fault tests (test/faults.*.netns.e2e.test.ts):
 * `node --import tsx test/helpers/intruder.ts <plan.json>`. It uses the NATS client directly, as an attacker
 * with a stolen credential would, and prints one JSON line per attempt: what it tried and what the server said.
 */
import { readFileSync } from "node:fs";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";

export type Attempt =
  /** A JetStream publish: a stored message is acknowledged, a refused one is not. */
  | { kind: "publish"; subject: string; data: string; msgId?: string }
  /** `count` JetStream publishes of `data` with a distinct msgID each; reports how many were stored. */
  | { kind: "flood"; subject: string; data: string; count: number }
  | { kind: "kvPut"; bucket: string; key: string; value: string }
  | { kind: "kvGet"; bucket: string; key: string }
  /** The last message a stream holds on a subject (its data), or null when it holds none. */
  | { kind: "lastMsg"; stream: string; subject: string };

export interface Plan {
  url: string;
  /** Without one, the connection itself is what is tried. */
  credential?: { user: string; password: string };
  attempts: Attempt[];
}

export interface Result {
  attempt: Attempt["kind"] | "connect";
  subject?: string;
  ok: boolean;
  /** The server's or the client's error, for a refused attempt. */
  error?: string;
  /** The stream sequence of a stored message, a KV revision, or a value read. */
  detail?: unknown;
}

const say = (r: Result) => process.stdout.write(`${JSON.stringify(r)}\n`);
const messageOf = (err: unknown) => `${(err as Error).name}: ${(err as Error).message}`;

async function attempt(nc: NatsConnection, a: Attempt): Promise<void> {
  const js = jetstream(nc, { timeout: 3_000 });
  try {
    switch (a.kind) {
      case "publish": {
        const ack = await js.publish(a.subject, a.data, a.msgId ? { msgID: a.msgId } : {});
        say({ attempt: a.kind, subject: a.subject, ok: true, detail: ack.seq });
        return;
      }
      case "flood": {
        let stored = 0;
        const errors = new Set<string>();
        // In batches, so the flood is fast and the server's answers are all counted.
        for (let i = 0; i < a.count; i += 100) {
          const batch = Array.from({ length: Math.min(100, a.count - i) }, (_, j) => js.publish(a.subject, a.data, { msgID: `flood-${process.pid}-${i + j}` }));
          for (const r of await Promise.allSettled(batch)) {
            if (r.status === "fulfilled") stored++;
            else errors.add(messageOf(r.reason));
          }
        }
        say({ attempt: a.kind, subject: a.subject, ok: stored === a.count, detail: stored, ...(errors.size ? { error: [...errors].join("; ") } : {}) });
        return;
      }
      case "kvPut": {
        const kv = await new Kvm(nc).open(a.bucket);
        const revision = await kv.put(a.key, a.value);
        say({ attempt: a.kind, subject: a.key, ok: true, detail: revision });
        return;
      }
      case "kvGet": {
        const kv = await new Kvm(nc).open(a.bucket);
        const entry = await kv.get(a.key);
        say({ attempt: a.kind, subject: a.key, ok: true, detail: entry ? entry.string() : null });
        return;
      }
      case "lastMsg": {
        const jsm = await jetstreamManager(nc, { timeout: 3_000 });
        const msg = await jsm.streams.getMessage(a.stream, { last_by_subj: a.subject });
        say({ attempt: a.kind, subject: a.subject, ok: true, detail: msg ? msg.string() : null });
        return;
      }
    }
  } catch (err) {
    say({ attempt: a.kind, subject: "subject" in a ? a.subject : a.key, ok: false, error: messageOf(err) });
  }
}

async function main(): Promise<void> {
  const plan = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as Plan;
  let nc: NatsConnection;
  try {
    nc = await connect({ servers: plan.url, reconnect: false, timeout: 5_000, ...(plan.credential ? { user: plan.credential.user, pass: plan.credential.password } : {}) });
  } catch (err) {
    say({ attempt: "connect", ok: false, error: messageOf(err) });
    return;
  }
  say({ attempt: "connect", ok: true });
  // The server tells of every refusal on the connection too; the attempt's own error is what is reported.
  for (const a of plan.attempts) await attempt(nc, a);
  await nc.close();
}

main().catch((err) => {
  say({ attempt: "connect", ok: false, error: messageOf(err) });
  process.exitCode = 1;
});
