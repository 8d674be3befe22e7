import { describe, expect, it } from "vitest";
import { createServer } from "node:net";
import { freePort, onFreePort } from "../bus/natsProcess.js";

describe("a free port for a server", () => {
  it("is free on every address when asked for 0.0.0.0", async () => {
    const port = await freePort("0.0.0.0");
    const srv = createServer();
    await new Promise<void>((resolve, reject) => srv.once("error", reject).listen(port, "0.0.0.0", () => resolve()));
    await new Promise((r) => srv.close(r));
  });

  it("is tried again, with another port, when it was taken before the server bound it", async () => {
    const tried: number[] = [];
    const { port, proc } = await onFreePort(undefined, "127.0.0.1", async (p) => {
      tried.push(p);
      if (tried.length === 1) throw new Error(`listen tcp 127.0.0.1:${p}: bind: address already in use`);
      return "started";
    });
    expect(proc).toBe("started");
    expect(tried).toHaveLength(2);
    expect(port).toBe(tried[1]);
  });

  it("is not changed when it was given, and other failures are not retried", async () => {
    await expect(onFreePort(4222, "127.0.0.1", async () => { throw new Error("bind: address already in use"); })).rejects.toThrow(/already in use/);
    let calls = 0;
    await expect(onFreePort(undefined, "127.0.0.1", async () => { calls++; throw new Error("nats-server is not installed"); })).rejects.toThrow(/not installed/);
    expect(calls).toBe(1);
  });
});
