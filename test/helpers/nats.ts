import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startLocalNats, type LocalNats } from "../../bus/server.js";
import { connectBus, type Bus } from "../../bus/connection.js";

/** A real nats-server for one suite, on loopback, with its store in a temporary folder. */
export async function natsForSuite(): Promise<{ server: LocalNats; bus: Bus; dir: string; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "swarm-test-"));
  const server = await startLocalNats({ storeDir: join(dir, "nats") });
  const bus = await connectBus(server.url);
  return {
    server,
    bus,
    dir,
    async close() {
      await bus.close();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
