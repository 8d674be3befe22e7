import { execa } from "execa";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMachine, type AnyStateMachine, type AnyStateNode, type AnyTransitionDefinition } from "xstate";
import { getStateNodes } from "xstate/graph";
import { machines, type Role } from "../machines/index.js";
import { elementId, machineDot, stateElementId, toDot } from "../machines/dot.js";
import { machineSvg, renderSvg } from "../scripts/graphviz.js";
import { ROOT, runScript } from "./helpers/cli.js";

const roles = Object.keys(machines) as Role[];
const PICTURES = join(ROOT, "machines/pictures");

interface Group {
  id: string | null;
  class: string | null;
  title: string | null;
  texts: string[];
}

/** Every <g> of an SVG as a real XML parser (Python's expat) reads it: a file that is not well-formed throws. */
async function groups(svg: string): Promise<Group[]> {
  const script = [
    "import json, sys, xml.etree.ElementTree as E",
    "NS = '{http://www.w3.org/2000/svg}'",
    "root = E.parse(sys.stdin).getroot()",
    "assert root.tag == NS + 'svg', root.tag",
    "def title(g):",
    "    t = g.find(NS + 'title')",
    "    return None if t is None else t.text",
    "print(json.dumps([{'id': g.get('id'), 'class': g.get('class'), 'title': title(g), 'texts': [t.text or '' for t in g.findall(NS + 'text')]} for g in root.iter(NS + 'g')]))",
  ].join("\n");
  const { stdout } = await execa("python3", ["-c", script], { input: svg });
  return JSON.parse(stdout) as Group[];
}

const byId = (all: Group[], id: string) => all.filter((g) => g.id === id);
const edgesOf = (all: Group[]) => all.filter((g) => g.class?.split(" ").includes("edge"));

/** How an edge's label must begin for this transition, read from the transition itself. */
function eventWord(node: AnyStateNode, t: AnyTransitionDefinition): string {
  const type = t.eventType;
  if (!type) return "always";
  if (type.startsWith("xstate.after.")) return "after ";
  for (const [prefix, word] of [["xstate.done.actor.", "done"], ["xstate.error.actor.", "error"]] as const) {
    if (!type.startsWith(prefix)) continue;
    // An invoked actor is named by its source; any other (a spawned one, `*` for all) by its id.
    const actorId = type.slice(prefix.length);
    return `${word}(${String(node.invoke.find((i) => i.id === actorId)?.src ?? actorId)})`;
  }
  return type;
}

function guardName(guard: unknown): string | undefined {
  if (guard === undefined) return undefined;
  return typeof guard === "string" ? guard : String((guard as { type?: unknown }).type ?? "inline guard");
}

describe("the state ids", () => {
  it("hold only letters, digits, '-', '_' and '.', and keep apart paths that read alike", () => {
    expect(stateElementId("coder", ["running"])).toBe("state-coder-running");
    expect(stateElementId("areaChair", [])).toBe("state-areaChair");
    expect(elementId("coder", ["running", "plotting"])).toBe("state-coder-running.plotting");
    expect(elementId("x", ["GO-ON", 'a.b "c"'])).toBe("state-x-GO_2d_ON.a_2e_b_20__22_c_22_");
    const alike = [["a", "b"], ["a.b"], ["a_2e_b"], ["a-b"]].map((path) => elementId("x", path));
    expect(new Set(alike).size).toBe(alike.length);
    for (const id of alike) expect(id).toMatch(/^[A-Za-z0-9._-]+$/);
  });
});

describe("machineSvg", () => {
  for (const role of roles) {
    it(`draws every state of ${role} under its id, and every transition labelled by its event`, async () => {
      const machine: AnyStateMachine = machines[role];
      const all = await groups(await machineSvg(role));

      expect(byId(all, stateElementId(role, []))[0]?.class?.split(" ")).toContain("graph");
      const states = getStateNodes(machine.root);
      for (const node of states) {
        const [group, ...more] = byId(all, stateElementId(role, node.path));
        expect(group, `${role}: state ${node.path.join(".")} has no element`).toBeDefined();
        expect(more).toEqual([]);
        expect(group!.class).toContain("state");
        expect(group!.texts[0]).toBe(node.key);
      }

      // The swarm's machines are flat, so every edge joins two state nodes (nested ones are tested below).
      expect(states.every((n) => n.type === "atomic" || n.type === "final")).toBe(true);
      const edges = edgesOf(all);
      let transitions = 0;
      let between = 0;
      const looping = new Set<string>();
      for (const node of states) {
        for (const t of [...[...node.transitions.values()].flat(), ...(node.always ?? [])]) {
          const targets = t.target?.length ? (t.target as AnyStateNode[]) : [node];
          for (const target of targets) {
            transitions++;
            const title = `${stateElementId(role, node.path)}->${stateElementId(role, target.path)}`;
            if (target === node) looping.add(title);
            else between++;
            const labels = edges.filter((e) => e.title === title).flatMap((e) => e.texts);
            const guard = guardName(t.guard);
            const wanted = labels.filter((l) => l.startsWith(eventWord(node, t)) && (guard ? l.endsWith(` [${guard}]`) : !l.endsWith("]")));
            expect(wanted, `${role}: ${title} on ${t.eventType || "always"} (labels there: ${labels.join(" | ")})`).not.toEqual([]);
          }
        }
      }
      // A line of label per transition; one edge per transition between two states, one per state for its self loops.
      expect(edges.flatMap((e) => e.texts)).toHaveLength(transitions);
      expect(edges.filter((e) => looping.has(e.title ?? ""))).toHaveLength(looping.size);
      expect(edges).toHaveLength(1 + between + looping.size); // and the initial dot's arrow
    });
  }

  it("is the same for the same machine", async () => {
    expect(await machineSvg("coder")).toBe(await machineSvg("coder"));
    expect(machineDot("writer")).toBe(machineDot("writer"));
  });

  it("draws nested and parallel states as clusters, and labels come out exactly as written", async () => {
    // xstate reads `\` in a target as an escape, so only the event holds one.
    const odd = 'say "hi" <b> & &amp; ü';
    const event = `${odd} \\n \\N`;
    const nested = createMachine({
      id: "nested",
      initial: "idle",
      states: {
        idle: { on: { "GO-ON": { target: "busy", guard: ({ event }) => event.type === "GO-ON" } } },
        busy: {
          type: "parallel",
          on: { STOP: "end" },
          states: {
            left: { initial: "a", states: { a: { after: { 100: "b" } }, b: { type: "final" } } },
            right: { initial: "c", states: { c: { on: { [event]: odd } }, [odd]: {} } },
          },
          onDone: "end",
        },
        end: { type: "final" },
      },
    });
    const dot = toDot(nested, "nested");
    const all = await groups(await renderSvg(dot));
    const id = (...path: string[]) => elementId("nested", path);

    for (const path of [["busy"], ["busy", "left"], ["busy", "right"]]) {
      const [cluster] = byId(all, id(...path));
      expect(cluster?.class).toContain("cluster");
      expect(cluster?.texts).toEqual([path.at(-1)]);
    }
    expect(byId(all, id("busy", "right", odd))[0]?.texts).toEqual([odd]);
    expect(byId(all, id("busy", "left", "b"))[0]?.class).toBe("node state final");

    const edges = edgesOf(all).map((e) => `${e.title} ${e.texts.join(" ")}`);
    expect(edges).toContain(`${id("idle")}->anchor-${id("busy")} GO-ON [inline guard]`);
    expect(edges).toContain(`anchor-${id("busy")}->${id("end")} STOP`);
    expect(edges).toContain(`anchor-${id("busy")}->${id("end")} done`);
    expect(edges).toContain(`${id("busy", "left", "a")}->${id("busy", "left", "b")} after 100ms`);
    expect(edges).toContain(`${id("busy", "right", "c")}->${id("busy", "right", odd)} ${event}`);
    // Edges at a cluster stop at its border; the regions get an initial dot each, the parallel state none.
    expect(dot).toContain(`lhead="cluster_${id("busy")}"`);
    expect(dot).toContain(`ltail="cluster_${id("busy")}"`);
    expect(dot.match(/class="initial"/g)).toHaveLength(3);
  });

  it("says how to install Graphviz when dot is missing", async () => {
    const path = process.env.PATH;
    process.env.PATH = "/nonexistent";
    try {
      await expect(machineSvg("critic")).rejects.toMatchObject({ kind: "environment", hint: "apt-get install graphviz (scripts/setup.sh installs it)" });
    } finally {
      process.env.PATH = path;
    }
  });
});

describe("npm run graph", () => {
  let out: string;
  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), "graph-"));
    const run = await runScript("graph", ["--out", out]);
    expect(run.exitCode, run.all).toBe(0);
  });
  afterAll(async () => {
    await rm(out, { recursive: true, force: true });
  });

  it("writes every machine's SVG and a page that shows them all from beside it", async () => {
    const html = await readFile(join(out, "index.html"), "utf8");
    for (const role of roles) {
      expect(await readFile(join(out, `${role}.svg`), "utf8")).toBe(await machineSvg(role));
      expect(html).toContain(`<img src="${role}.svg"`);
    }
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
  });

  it("has written the pictures in machines/pictures from the machines as they are", async () => {
    const stale = "machines/pictures is stale: npm run graph -- --out machines/pictures";
    expect((await readdir(PICTURES)).sort(), stale).toEqual((await readdir(out)).sort());
    for (const name of await readdir(out)) {
      expect(await readFile(join(PICTURES, name), "utf8"), `${stale} (${name} differs)`).toBe(await readFile(join(out, name), "utf8"));
    }
  });
});
