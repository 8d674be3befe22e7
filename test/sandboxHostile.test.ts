import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { pino } from "pino";
import { runSandboxed } from "../agents/coder/sandbox.js";

// Generated code as an attacker would write it: each attempt must fail or see nothing, and nothing of it may last.
const log = pino({ level: "silent" });
const python = "/usr/bin/python3";
const repoRoot = fileURLToPath(new URL("..", import.meta.url));
const tag = randomBytes(4).toString("hex");
const homeSecret = join(homedir(), `.sandbox-secret-${tag}`);
let ws: string;

beforeAll(() => {
  ws = mkdtempSync(join(tmpdir(), "hostile-"));
  writeFileSync(homeSecret, "sk-home-secret");
});
afterAll(() => {
  rmSync(ws, { recursive: true, force: true });
  rmSync(homeSecret, { force: true });
});

const run = (code: string, extra: Partial<Parameters<typeof runSandboxed>[0]> = {}) => {
  const name = `s${randomBytes(3).toString("hex")}.py`;
  writeFileSync(join(ws, name), code);
  return runSandboxed({ cwd: ws, python, args: [name], timeoutMs: 15_000, log, ...extra });
};

/** Host processes whose real uid is `uid`. */
async function processesOf(uid: number): Promise<string[]> {
  const found: string[] = [];
  for (const pid of (await readdir("/proc")).filter((n) => /^\d+$/.test(n))) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      if (Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]) === uid) found.push(`${pid} ${/^Name:\s+(.*)$/m.exec(status)?.[1]}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

describe("a hostile experiment in the sandbox", () => {
  it("runs as an unprivileged user with no capabilities", async () => {
    const res = await run("import os\nprint(os.getuid(), os.getgid(), os.getgroups(), open('/proc/self/status').read().split('CapEff:')[1].split()[0])\n");
    expect(res.ok, res.stderr).toBe(true);
    const [uid, gid, groups, caps] = res.stdout.trim().split(" ");
    expect(Number(uid)).not.toBe(0);
    expect(Number(uid)).toBe(res.uid);
    expect(Number(gid)).not.toBe(0);
    expect(groups).toBe("[]");
    expect(caps).toBe("0000000000000000");
  });

  it("reads no secret, no repository, no home folder, and writes nowhere but its workspace", async () => {
    const outside = [join(repoRoot, `escape-${tag}`), join(tmpdir(), `escape-${tag}`), "/etc/escape", join(homedir(), `escape-${tag}`), "/escape"];
    const reads = ["/etc/shadow", "/etc/gshadow", join(repoRoot, "package.json"), homeSecret, "/root/.bashrc", "/proc/1/environ"];
    const lists = ["/work", "/root", "/home", repoRoot, "/etc"];
    const res = await run(`import json, os
out = {"read": {}, "wrote": {}, "list": {}}
for p in ${JSON.stringify(reads)}:
    try: out["read"][p] = open(p).read()[:40]
    except OSError as e: out["read"][p] = None
for p in ${JSON.stringify(outside)}:
    try: open(p, "w").write("x"); out["wrote"][p] = True
    except OSError: out["wrote"][p] = False
for p in ${JSON.stringify(lists)}:
    try: out["list"][p] = sorted(os.listdir(p))
    except OSError: out["list"][p] = None
open("mine.txt", "w").write("ok")
print(json.dumps(out))
`);
    expect(res.ok, res.stderr).toBe(true);
    const out = JSON.parse(res.stdout) as { read: Record<string, string | null>; wrote: Record<string, boolean>; list: Record<string, string[] | null> };
    for (const p of reads.filter((r) => r !== "/proc/1/environ")) expect(out.read[p], p).toBeNull();
    // Its own PID 1 is bwrap's, with the scrubbed environment at most.
    expect(out.read["/proc/1/environ"] ?? "").not.toMatch(/KEY|TOKEN/);
    for (const p of outside) {
      // Its /tmp is a private one, gone with it; everything else outside its workspace is read-only or absent.
      if (!p.startsWith(tmpdir())) expect(out.wrote[p], p).toBe(false);
      expect(existsSync(p), p).toBe(false);
    }
    // Only the path to its workspace exists of /work, /root and the repository; /etc holds what Python needs.
    expect(out.list["/root"] ?? []).toEqual([]);
    expect(out.list["/home"] ?? []).toEqual([]);
    expect(out.list[repoRoot] ?? []).not.toContain("package.json");
    expect(out.list["/etc"]).not.toContain("shadow");
    expect(out.list["/etc"]).toContain("passwd");
    // What it wrote in its workspace is there, and belongs to the worker again.
    expect(readFileSync(join(ws, "mine.txt"), "utf8")).toBe("ok");
    expect(statSync(join(ws, "mine.txt")).uid).toBe(process.getuid!());
  });

  it("stops a fork loop at the process limit and says so, leaving no process behind", async () => {
    const started = Date.now();
    const res = await run("import os, time\nwhile True:\n    if os.fork() == 0:\n        time.sleep(600)\n        os._exit(0)\n", { maxProcesses: 40 });
    expect(res.ok).toBe(false);
    expect(res.timedOut).toBe(false);
    expect(res.stderr).toMatch(/hit the limit of 40 processes/);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await processesOf(res.uid!)).toEqual([]);
  });

  it("lets no daemon (double fork and setsid) outlive the run", async () => {
    const res = await run(`import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.closerange(0, 3)
        time.sleep(600)
    os._exit(0)
time.sleep(0.3)
print("parent done")
`);
    expect(res.ok, res.stderr).toBe(true);
    expect(await processesOf(res.uid!)).toEqual([]);
  });

  it("still runs numpy and matplotlib, writing its outputs into the workspace", async () => {
    const res = await run(`import json, os, numpy as np, matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
x = np.linspace(0, 1, 50)
os.makedirs("run_1", exist_ok=True)
plt.plot(x, x ** 2); plt.savefig("run_1/plot.png")
json.dump({"toy": {"means": {"loss": float((x ** 2).mean())}}}, open("run_1/final_info.json", "w"))
`);
    expect(res.ok, res.stderr).toBe(true);
    expect(JSON.parse(readFileSync(join(ws, "run_1", "final_info.json"), "utf8")).toy.means.loss).toBeCloseTo(0.3367, 3);
    expect(statSync(join(ws, "run_1", "plot.png")).size).toBeGreaterThan(1000);
    expect(statSync(join(ws, "run_1")).uid).toBe(process.getuid!());
  });
});
