import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type Server } from "node:net";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { execa } from "execa";
import { pino } from "pino";
import { runSandboxed } from "../agents/coder/sandbox.js";

const log = pino({ level: "silent" });
const python = "/usr/bin/python3";
let ws: string;
let server: Server;
let port = 0;
let connections = 0;

beforeAll(async () => {
  ws = mkdtempSync(join(tmpdir(), "sandbox-"));
  server = createServer((sock) => {
    connections++;
    sock.end("hello");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(ws, { recursive: true, force: true });
});

function script(name: string, code: string): string {
  writeFileSync(join(ws, name), code);
  return name;
}

/** Live processes whose command line holds `marker` (a zombie has an empty one). */
async function processesNamed(marker: string): Promise<string[]> {
  const { stdout } = await execa("pgrep", ["-af", marker], { reject: false });
  return stdout.split("\n").filter((l) => l.includes(marker) && !l.includes("pgrep"));
}

const run = (file: string, extra: Partial<Parameters<typeof runSandboxed>[0]> = {}) =>
  runSandboxed({ cwd: ws, python, args: [file], timeoutMs: 10_000, log, ...extra });

describe("the sandbox for generated code", () => {
  it("runs well-behaved code in its workspace, with no secrets in the environment", async () => {
    process.env.OPENAI_API_KEY = "sk-should-never-be-seen-1234567890";
    try {
      const res = await run(script("env.py", "import os, json\nprint(json.dumps(dict(os.environ)))\nopen('out.txt', 'w').write('ok')\n"));
      expect(res.ok, res.stderr).toBe(true);
      expect(res.sandboxed).toBe(true);
      const env = JSON.parse(res.stdout);
      expect(env.OPENAI_API_KEY).toBeUndefined();
      expect(Object.keys(env).filter((k) => /KEY|TOKEN|SECRET|NATS/.test(k))).toEqual([]);
      expect(existsSync(join(ws, "out.txt"))).toBe(true);
    } finally {
      delete process.env.OPENAI_API_KEY;
    }
  });

  it("gives it no network, not even loopback", async () => {
    const res = await run(script("net.py", `import socket\ns = socket.create_connection(("127.0.0.1", ${port}), timeout=3)\nprint(s.recv(10))\n`));
    expect(res.ok).toBe(false);
    expect(res.stderr).toMatch(/Network is unreachable|Connection refused|OSError/);
    expect(connections).toBe(0);
  });

  it("lets it write nowhere outside its workspace", async () => {
    const outside = join(tmpdir(), `escape-${randomBytes(4).toString("hex")}`);
    const home = join(process.cwd(), `escape-${randomBytes(4).toString("hex")}`);
    const res = await run(script("write.py", `for p in [${JSON.stringify(outside)}, ${JSON.stringify(home)}, "/etc/escape"]:\n    try:\n        open(p, "w").write("x")\n        print("wrote", p)\n    except OSError as e:\n        print("refused", p, e.errno)\n`));
    expect(res.ok).toBe(true);
    expect(existsSync(outside)).toBe(false);
    expect(existsSync(home)).toBe(false);
    expect(existsSync("/etc/escape")).toBe(false);
    // /tmp inside is a private tmpfs; the repository and /etc are read-only.
    expect(res.stdout).toMatch(/refused .*escape-/);
  });

  it("kills a run that sleeps forever at its limit, with every process it started", async () => {
    const marker = `sleeper-${randomBytes(4).toString("hex")}`;
    const started = Date.now();
    const res = await run(script("sleep.py", `import subprocess, time\nsubprocess.Popen(["${marker}", "1000"], executable="/bin/sleep")\ntime.sleep(1000)\n`), { timeoutMs: 1500 });
    expect(res.ok).toBe(false);
    expect(res.timedOut).toBe(true);
    expect(res.stderr).toMatch(/exceeded the wall-clock limit/);
    expect(Date.now() - started).toBeLessThan(6000);
    // Ended means ended: nothing it started is left when the run returns.
    expect(await processesNamed(marker)).toEqual([]);
  });

  it("ends a cancelled run only when every process of its sandbox has, bubblewrap's own among them", async () => {
    const marker = `cancelled-${randomBytes(4).toString("hex")}`;
    const cwd = join(ws, marker);
    mkdirSync(cwd);
    writeFileSync(join(cwd, "wait.py"), `import subprocess, time\nsubprocess.Popen(["${marker}", "1000"], executable="/bin/sleep")\nprint("up", flush=True)\ntime.sleep(1000)\n`);
    const stop = new AbortController();
    const running = runSandboxed({ cwd, python, args: ["wait.py"], timeoutMs: 60_000, log, signal: stop.signal });
    // Every process of the run, bubblewrap's too, names the workspace or the marker.
    while ((await processesNamed(marker)).length < 3) await new Promise((r) => setTimeout(r, 20));
    stop.abort();
    const res = await running;
    expect(res.ok).toBe(false);
    expect(res.stderr).toMatch(/cancelled|killed/);
    expect(await processesNamed(marker)).toEqual([]);
  });

  it("caps what it prints, keeping the tail", async () => {
    const res = await run(script("loud.py", "import sys\nfor i in range(200000):\n    sys.stderr.write(f'line {i}\\n')\nraise SystemExit(3)\n"), { maxOutputBytes: 4096 });
    expect(res.ok).toBe(false);
    expect(res.exitCode).toBe(3);
    expect(res.stderr.length).toBeLessThan(4096 + 200);
    expect(res.stderr).toMatch(/line 199999/);
    expect(res.stderr).toMatch(/bytes cut/);
  });

  it("stops a run that takes more memory than its limit", async () => {
    const res = await run(script("mem.py", "x = bytearray(1024 * 1024 * 1024)\nprint('allocated')\n"), { memoryMb: 256 });
    expect(res.ok).toBe(false);
    expect(res.stderr).toMatch(/MemoryError/);
  });
});
