import { execa } from "execa";
import { describe, expect, it } from "vitest";
import type { SeedRun, TreeNode, TreeRecord } from "../bus/schemas.js";
import { drawTree } from "../agents/coder/treeDrawing.js";
import { interval, searchStats, tQuantile, welchGain } from "../agents/coder/treeStats.js";

// Expected numbers from tables of Student's t, and for the rest from a separate Python computation (Simpson
// integration of the t density, then bisection), so that the code is not checked against itself.

describe("tQuantile", () => {
  it.each([
    [0.975, 1, 12.7062047],
    [0.975, 2, 4.30265273],
    [0.975, 4, 2.77644511],
    [0.995, 10, 3.16927267],
    [0.95, 3, 2.35336343],
    [0.9, 5, 1.47588404],
    [0.975, 30, 2.04227246],
    [0.975, 1000, 1.96233908],
    [0.975, 2.5, 3.57465484],
  ])("t(%f, %f) = %f", (p, df, expected) => {
    expect(Math.abs(tQuantile(p, df) - expected)).toBeLessThan(1e-6);
  });

  it("is symmetric about 0 and refuses p outside (0, 1)", () => {
    expect(tQuantile(0.5, 3)).toBe(0);
    expect(tQuantile(0.025, 4)).toBeCloseTo(-2.77644511, 7);
    expect(() => tQuantile(1, 3)).toThrow(RangeError);
    expect(() => tQuantile(0.9, 0)).toThrow(RangeError);
  });
});

describe("interval", () => {
  it("is mean ± t·s/√n", () => {
    const iv = interval([1, 2, 3, 4, 5]);
    expect(iv.n).toBe(5);
    expect(iv.mean).toBeCloseTo(3, 12);
    expect(iv.lo).toBeCloseTo(1.0367568385, 8);
    expect(iv.hi).toBeCloseTo(4.9632431615, 8);
    const ninety = interval([2.1, 2.5, 1.9, 2.8, 2.4, 2.2], 0.9);
    expect(ninety.level).toBe(0.9);
    expect(ninety.mean).toBeCloseTo(2.3166666667, 8);
    expect(ninety.lo).toBeCloseTo(2.0543661516, 8);
    expect(ninety.hi).toBeCloseTo(2.5789671817, 8);
  });

  it("has no width for one value", () => {
    expect(interval([0.7])).toEqual({ n: 1, mean: 0.7, lo: 0.7, hi: 0.7, level: 0.95 });
  });
});

describe("welchGain", () => {
  it("measures the gain in the goal's direction", () => {
    const max = welchGain([1, 2, 3], [4, 5, 6], "max");
    expect(max.diff).toBeCloseTo(-3, 12);
    expect(max.lo).toBeCloseTo(-5.2669579355, 8);
    expect(max.hi).toBeCloseTo(-0.7330420645, 8);
    const unequal = welchGain([10, 12, 14, 11], [8, 8.5, 9], "max");
    expect(unequal.diff).toBeCloseTo(3.25, 12);
    expect(unequal.lo).toBeCloseTo(0.6508456378, 7);
    expect(unequal.hi).toBeCloseTo(5.8491543622, 7);
    const min = welchGain([10, 12, 14, 11], [8, 8.5, 9], "min", 0.9);
    expect(min.diff).toBeCloseTo(-3.25, 12);
    expect(min.lo).toBeCloseTo(-5.225229988, 7);
    expect(min.hi).toBeCloseTo(-1.274770012, 7);
    expect(min.level).toBe(0.9);
  });

  it("has no width when neither side varies", () => {
    expect(welchGain([0.5], [0.25, 0.25], "min")).toEqual({ diff: -0.25, lo: -0.25, hi: -0.25, level: 0.95 });
  });
});

const node = (id: string, parent: string, stage: TreeNode["stage"], action: TreeNode["action"], status: TreeNode["status"], value?: number, by?: string): TreeNode => ({
  id, parent, stage, action, debugDepth: action === "debug" ? 1 : 0, status,
  ...(status === "running" ? {} : { description: `${id}: a change` }),
  ...(value === undefined ? {} : { value }),
  ...(by === undefined ? {} : { by }),
});

const run = (of: string, seed: number, purpose: SeedRun["purpose"], value: number | undefined, by?: string, status: SeedRun["status"] = "works"): SeedRun => ({
  id: `${of}-s${seed}`, of, seed, purpose, status, ...(value === undefined ? {} : { value }), ...(by === undefined ? {} : { by }),
});

function record(confirm: SeedRun[]): TreeRecord {
  return {
    metric: { name: "accuracy", goal: "max" },
    seeded: true,
    seeds: 3,
    // Out of order on purpose: the stats go by the stages' own order.
    stages: [
      { stage: "research", goal: "new ideas", budget: 2, best: "n4" },
      { stage: "implement", goal: "make it run", budget: 3, best: "n2" },
      { stage: "tune", goal: "tune it", budget: 1, best: "n4" },
      { stage: "ablate", goal: "take changes back", budget: 3 },
    ],
    nodes: [
      node("n1", "root", "implement", "draft", "buggy", undefined, "coderA"),
      node("n2", "n1", "implement", "debug", "works", 0.8, "coderA"),
      node("n3", "root", "implement", "draft", "works", 0.78, "coderB"),
      { ...node("n4", "n2", "tune", "improve", "works", 0.85, "coderA"), description: `lr <script>&alert("x")</script> 'warm'` },
      node("n5", "n4", "research", "improve", "lost"),
      node("n6", "n4", "research", "improve", "works", 0.83),
      node("n7", "n4", "ablate", "ablate", "works", 0.81),
      node("n8", "n4", "ablate", "ablate", "works", 0.86),
      node("n9", "n4", "ablate", "ablate", "running"),
    ],
    seedRuns: [
      run("root", 1, "replicate", 0.75),
      run("root", 2, "replicate", 0.77),
      run("root", 3, "replicate", undefined, undefined, "buggy"),
      run("n2", 1, "replicate", 0.79),
      run("n4", 1, "replicate", 0.84),
      run("n4", 2, "replicate", 0.86),
      ...confirm,
    ],
    final: "n4",
  };
}

const holding = [
  run("n4", 1000, "confirm", 0.85, "coderB"),
  run("n4", 1001, "confirm", 0.86, "coderB"),
  run("n4", 1002, "confirm", 0.84, "coderC"),
  run("n4", 1003, "confirm", undefined, "coderC", "lost"),
  run("root", 1000, "confirm", 0.76, "coderB"),
  run("root", 1001, "confirm", 0.75, "coderB"),
  run("root", 1002, "confirm", 0.77, "coderC"),
];

describe("searchStats", () => {
  const stats = searchStats(record(holding), 0.76);

  it("counts the variants", () => {
    expect(stats.metric).toEqual({ name: "accuracy", goal: "max" });
    expect(stats.variantsTried).toBe(8);
    expect(stats.variantsWorking).toBe(6);
    expect(stats.debugged).toBe(1);
  });

  it("lists the baseline, then each stage's best once", () => {
    expect(stats.chosen.map((c) => [c.node, c.stage])).toEqual([["root", "baseline"], ["n2", "implement"], ["n4", "tune"]]);
    const [root, n2, n4] = stats.chosen;
    expect(root!.values).toEqual([0.76, 0.75, 0.77]);
    expect(root!.seeds).toEqual([0, 1, 2]);
    expect(n2!.values).toEqual([0.8, 0.79]);
    expect(n4!.seeds).toEqual([0, 1, 2]);
    expect(n4!.summary.mean).toBeCloseTo(0.85, 12);
    expect(n4!.description).toContain("<script>");
  });

  it("labels a final that no stage chose as final", () => {
    const tree = record(holding);
    tree.final = "n6";
    expect(searchStats(tree, 0.76).chosen.map((c) => [c.node, c.stage]).at(-1)).toEqual(["n6", "final"]);
  });

  it("widens the search's gain for the variants tried", () => {
    const gain = stats.searchGain!;
    expect(gain.level).toBeCloseTo(1 - 0.05 / 8, 12);
    expect(gain.diff).toBeCloseTo(0.09, 12);
    expect(gain.lo).toBeCloseTo(0.0470436448, 7);
    expect(gain.hi).toBeCloseTo(0.1329563552, 7);
    const tree = record(holding);
    delete tree.final;
    expect(searchStats(tree, 0.76).searchGain).toBeUndefined();
  });

  it("says what each ablation's change was worth", () => {
    expect(stats.ablations.map((a) => [a.node, a.value])).toEqual([["n7", 0.81], ["n8", 0.86]]);
    expect(stats.ablations[0]!.worth).toBeCloseTo(0.04, 12);
    expect(stats.ablations[1]!.worth).toBeCloseTo(-0.01, 12);
    const min = record(holding);
    min.metric.goal = "min";
    expect(searchStats(min, 0.76).ablations[0]!.worth).toBeCloseTo(-0.04, 12);
  });

  it("confirms on fresh seeds, by other coders", () => {
    const c = stats.confirmation!;
    expect(c.seeds).toEqual([1000, 1001, 1002]);
    expect(c.final.mean).toBeCloseTo(0.85, 12);
    expect(c.baseline.mean).toBeCloseTo(0.76, 12);
    expect(c.gain.level).toBe(0.95);
    expect(c.gain.lo).toBeCloseTo(0.0673304206, 7);
    expect(c.holds).toBe(true);
    expect(c.foundBy).toBe("coderA");
    expect(c.confirmedBy).toEqual(["coderB", "coderC"]);
    expect(c.independent).toBe(true);
  });

  it("does not confirm a gain the fresh seeds do not show, nor call the finder's own runs independent", () => {
    const c = searchStats(record([
      run("n4", 1000, "confirm", 0.76, "coderA"),
      run("n4", 1001, "confirm", 0.8, "coderA"),
      run("n4", 1002, "confirm", 0.74, "coderB"),
      run("root", 1000, "confirm", 0.76),
      run("root", 1001, "confirm", 0.75),
      run("root", 1002, "confirm", 0.77),
    ]), 0.76).confirmation!;
    expect(c.gain.diff).toBeCloseTo(0.0066666667, 8);
    expect(c.gain.lo).toBeCloseTo(-0.0611943533, 7);
    expect(c.holds).toBe(false);
    expect(c.confirmedBy).toEqual(["coderA", "coderB"]);
    expect(c.independent).toBe(false);
  });

  it("calls one run a side a reproduction, never a confirmation, however large the difference", () => {
    const c = searchStats(record([run("n4", 1000, "confirm", 0.95, "coderB"), run("root", 1000, "confirm", 0.5, "coderB")]), 0.76).confirmation!;
    expect(c.gain.lo).toBeCloseTo(0.45, 12);
    expect(c.holds).toBe(false);
  });

  it("has no confirmation without confirm runs of both sides", () => {
    expect(searchStats(record(holding.filter((r) => r.of === "n4")), 0.76).confirmation).toBeUndefined();
  });
});

describe("drawTree", () => {
  const tree = record(holding);
  const svg = drawTree(tree, searchStats(tree, 0.76));

  it("is well-formed XML", async () => {
    const check = "import sys, xml.dom.minidom; xml.dom.minidom.parseString(sys.stdin.read())";
    await execa("python3", ["-c", check], { input: svg });
  });

  it("escapes the record's text", () => {
    expect(svg).toContain("lr &lt;script&gt;&amp;alert(&quot;x&quot;)");
    expect(svg).not.toContain("<script>");
    expect(svg).not.toContain(`"x"`);
  });

  it("draws every node, the title and the final", () => {
    for (const id of ["root", ...tree.nodes.map((n) => n.id)]) expect(svg).toContain(`id="node-${id}"`);
    expect(svg).toContain("accuracy (goal: max, higher is better) · 8 variants tried");
    expect(svg).toContain(`class="node works final"`);
    expect(svg).toContain(">0.8500 · mean 0.8500 (3 seeds)<");
    expect(svg).toContain(">running<");
  });

  it("gives the same bytes for the same record", () => {
    expect(drawTree(record(holding), searchStats(record(holding), 0.76))).toBe(svg);
  });
});
