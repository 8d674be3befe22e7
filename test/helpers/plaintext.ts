import { createConnection } from "node:net";

/**
 * What a client in the clear hears from a NATS server on this machine: its INFO, then what it answers a CONNECT
 * and PING sent in the clear; `hungUp` when the server closed the connection instead of answering (5 s at most).
 */
export function plaintextPing(port: number): Promise<{ said: string; info: string; hungUp: boolean }> {
  return new Promise((resolve) => {
    const s = createConnection(port, "127.0.0.1");
    let said = "";
    const done = (hungUp: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve({ said, info: said.split("\r\n")[0] ?? "", hungUp });
    };
    s.on("data", (d) => {
      const first = !said.includes("\r\n");
      said += d.toString();
      if (said.includes("PONG")) done(false);
      else if (first && said.includes("\r\n")) s.write('CONNECT {"verbose":false,"pedantic":false,"tls_required":false}\r\nPING\r\n');
    });
    s.on("error", () => undefined);
    s.on("close", () => done(true));
    const timer = setTimeout(() => done(false), 5_000);
  });
}
