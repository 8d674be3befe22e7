// The live view's page. Everything it shows came over the bus, so it builds the DOM with textContent and
// attributes only, never with HTML parsing of bus text; the statecharts are SVG the server drew from the machines.
"use strict";

/** The six agents, the pipeline, the idea machines the pipeline spawns, and their tree searches' machines. */
const KINDS = ["ideator", "critic", "coder", "writer", "reviewer", "areaChair", "pipeline", "idea", "tree", "variant"];
/** The sequence view's lanes: who asks, who answers, and the model they ask. */
const LANES = ["pipeline", "ideator", "critic", "coder", "writer", "areaChair", "reviewer", "model"];
const TRANSITIONS_SHOWN = 12;
const PROGRESS_SHOWN = 40;

const $ = (id) => document.getElementById(id);

/** An element with attributes and children; strings become text nodes. */
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else e.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== undefined && c !== null) e.append(c instanceof Node ? c : String(c));
  return e;
}

const time = (at) => (typeof at === "string" ? at.slice(11, 19) : "");
const stateText = (value) => (typeof value === "string" ? value : JSON.stringify(value)).replace(/"/g, "");
const artifactUrl = (name) => `/artifacts/${String(name).split("/").map(encodeURIComponent).join("/")}`;

let view = fresh(null);
let source = null;
let followNewest = !new URLSearchParams(location.search).get("run");

function fresh(runId) {
  return {
    runId,
    config: null,
    status: null,
    /** actor id → {machine, by, ideaId, events (by seq), card} */
    actors: new Map(),
    /** The `at` of every state event, in ms, sorted: the slider's range. */
    times: [],
    outcomes: [],
    accepted: new Map(),
    progress: [],
    /** Everything in the sequence view, in the order the bus holds it. */
    messages: [],
    shownMessages: 0,
    live: true,
    t: 0,
  };
}

// ---- charts ----

const charts = new Map();
/** The machine's statechart as an SVG element, fetched once per machine and cloned per actor. */
function chart(machine) {
  if (!charts.has(machine)) {
    charts.set(machine, fetch(`/machines/${encodeURIComponent(machine)}.svg`)
      .then((r) => (r.ok ? r.text() : null))
      .then((text) => {
        if (!text) return null;
        const doc = new DOMParser().parseFromString(text, "image/svg+xml");
        return doc.querySelector("parsererror") ? null : doc.documentElement;
      })
      .catch(() => null));
  }
  return charts.get(machine);
}

// ---- the bus, as server-sent events ----

function connect(runId) {
  if (source) source.close();
  view = fresh(runId);
  clear();
  if (!runId) return;
  source = new EventSource(`/api/events?run=${encodeURIComponent(runId)}`);
  const on = (type, fn) => source.addEventListener(type, (m) => { fn(JSON.parse(m.data)); schedule(); });
  on("reset", (d) => { view = fresh(d.runId); clear(); });
  on("config", (c) => { view.config = c; });
  on("status", (s) => { view.status = s; });
  on("state", (events) => events.forEach(addState));
  on("outcome", (o) => {
    view.outcomes.push(o);
    view.messages.push({ at: o.outcome.at, from: o.from, to: o.to, ok: o.outcome.ok, label: outcomeLabel(o), content: o.outcome });
  });
  on("accepted", (a) => {
    view.accepted.set(a.ideaId, a);
    view.messages.push({ at: a.at, from: "ideator", to: "pipeline", ok: true, label: `accepted ${a.ideaId}: ${a.idea.Title}`, content: a.idea });
  });
  on("progress", (p) => { view.progress.push(p); });
  on("llm", (e) => {
    view.messages.push({ at: e.at, from: e.by.agent, to: "model", ok: !e.error, label: `${e.task}${e.ideaId ? ` (${e.ideaId})` : ""} · ${e.model} · $${e.costUsd.toFixed(4)}`, content: e });
  });
  source.addEventListener("open", () => { $("connection").textContent = "live from the bus"; });
  source.addEventListener("error", () => { $("connection").textContent = "reconnecting…"; });
}

function addState(e) {
  let a = view.actors.get(e.actor);
  if (!a) {
    a = { machine: e.machine, by: e.by, ideaId: e.ideaId, events: [], card: card(e) };
    view.actors.set(e.actor, a);
    $("actors").append(a.card.root);
  }
  a.by = e.by;
  a.events.push({ ...e, ms: Date.parse(e.at) });
  a.events.sort((x, y) => x.seq - y.seq);
  const ms = Date.parse(e.at);
  let i = view.times.length;
  while (i > 0 && view.times[i - 1] > ms) i--;
  view.times.splice(i, 0, ms);
}

function outcomeLabel(o) {
  const { kind, outcome } = o;
  const idea = outcome.ideaId ? ` ${outcome.ideaId}` : "";
  if (!outcome.ok) return `${kind}${idea} failed (${outcome.failure.kind}): ${outcome.failure.message}`;
  const r = outcome.result;
  if (kind === "review") return `review${idea}: Overall ${r.review.Overall}, ${r.review.Decision}`;
  if (kind === "chair") return `decision${idea}: ${r.decision} over ${r.reviews} reviews`;
  if (kind === "novelty") return `novelty${idea}: ${r.verdict}`;
  if (kind === "write") return `paper${idea}: ${r.pdf}`;
  if ((kind === "experiment" || kind === "gpuExperiment") && r.node) return `tree node ${r.node}${idea}: ${r.ok ? "works" : "buggy"}${typeof r.value === "number" ? ` (${r.value.toPrecision(4)})` : ""}`;
  if (kind === "experiment" || kind === "gpuExperiment") return `experiments${idea}: ${r.runs.length} runs, ${r.figures.length} figures`;
  if (kind === "ideate") return `ideas: ${r.ideas.map((i) => `${i.ideaId} ${i.status}`).join(", ")}`;
  return `${kind}${idea} done`;
}

// ---- rendering ----

let pending = false;
function schedule() {
  if (pending) return;
  pending = true;
  setTimeout(() => { pending = false; render(); }, 50);
}

function clear() {
  for (const id of ["progress", "actors", "sequence", "nodes", "queues", "ideas", "failures", "spend", "kinds"]) $(id).replaceChildren();
}

/** One actor's card: its name, where it runs, its chart, and its recent transitions. */
function card(e) {
  const root = el("article", { class: "actor", "data-actor": e.actor, "data-machine": e.machine });
  const chartBox = el("div", { class: "chart" });
  const now = el("div", { class: "now" });
  const list = el("ol");
  const where = el("div", { class: "muted" });
  root.append(el("h3", {}, e.actor), where, now, chartBox, list);
  const c = { root, chartBox, now, list, where, svg: null, lit: [] };
  chart(e.machine).then((svg) => {
    if (!svg) return void chartBox.append(el("span", { class: "muted" }, "no chart for this machine"));
    c.svg = document.importNode(svg, true);
    chartBox.append(c.svg);
    light(c, c.lit);
  });
  return c;
}

function light(c, ids) {
  c.lit = ids;
  c.root.dataset.lit = ids.join(" ");
  if (!c.svg) return;
  for (const old of c.svg.querySelectorAll(".lit")) old.classList.remove("lit");
  for (const id of ids) c.svg.querySelector(`[id="${CSS.escape(id)}"]`)?.classList.add("lit");
}

/** The event that put the actor in the state it was in at `t`, or its latest one when following live. */
function current(a) {
  if (view.live) return a.events[a.events.length - 1];
  let found;
  for (const ev of a.events) if (ev.ms <= view.t) found = ev;
  return found;
}

function render() {
  renderTimeline();
  renderActors();
  renderNodes();
  renderSpend();
  renderIdeas();
  renderFailures();
  renderSequence();
  renderProgress();
}

function renderProgress() {
  const shown = view.progress.filter((p) => said(p.at)).slice(-PROGRESS_SHOWN).reverse();
  $("progress").replaceChildren(...shown.map((p) => el("li", {}, `${time(p.at)} `, el("strong", {}, `${p.by.agent}@${p.by.node}`), p.ideaId ? ` ${p.ideaId}: ` : " ", p.text)));
}

function renderTimeline() {
  const slider = $("time");
  const times = view.times;
  if (!times.length) return void ($("time-label").textContent = "no state events yet");
  slider.min = String(times[0]);
  slider.max = String(times[times.length - 1]);
  if (view.live) slider.value = slider.max;
  const shown = view.live ? times[times.length - 1] : view.t;
  const upTo = times.filter((ms) => ms <= shown).length;
  $("time-label").textContent = `${view.live ? "live" : "replay"} · ${new Date(shown).toISOString().slice(11, 23)} · ${upTo} of ${times.length} transitions`;
}

function renderActors() {
  const counts = new Map(KINDS.map((k) => [k, 0]));
  for (const [, a] of view.actors) {
    counts.set(a.machine, (counts.get(a.machine) || 0) + 1);
    const ev = current(a);
    const c = a.card;
    c.where.textContent = `${a.machine} · ${a.by.agent} on ${a.by.node}${a.ideaId ? ` · ${a.ideaId}` : ""}`;
    c.root.classList.toggle("unborn", !ev);
    c.root.classList.toggle("done", Boolean(ev && ev.done));
    c.root.dataset.state = ev ? JSON.stringify(ev.state) : "";
    c.now.textContent = ev ? `now: ${stateText(ev.state)}${ev.done ? " (final)" : ""}` : "not started yet";
    const lit = ev ? ev.lit : [];
    if (lit.join(" ") !== c.lit.join(" ")) light(c, lit);
    const upTo = ev ? a.events.filter((x) => x.seq <= ev.seq) : [];
    c.list.replaceChildren(...upTo.slice(-TRANSITIONS_SHOWN).reverse().map((x) =>
      el("li", {}, `${time(x.at)} `, el("code", {}, x.event), " → ", stateText(x.state))));
  }
  $("kinds").replaceChildren(...[...counts].map(([k, n]) => el("span", { class: `kind${n ? "" : " absent"}`, "data-kind": k }, `${k} ×${n}`)));
}

function renderNodes() {
  const nodes = view.status?.nodes ?? [];
  const alive = (nodeId) => [...view.actors].filter(([, a]) => a.by.node === nodeId && !a.events[a.events.length - 1]?.done).map(([id]) => id);
  $("nodes").replaceChildren(...(nodes.length ? nodes.map((n) => el("li", { "data-node": n.nodeId },
    el("strong", {}, n.nodeId), ` on ${n.host}: `, Object.entries(n.roles).map(([r, k]) => `${r}=${k}`).join(", "),
    n.gpus ? `; ${n.gpus} GPU${n.gpus > 1 ? "s" : ""}` : "; no GPU", `; seen ${n.lastSeenS} s ago`,
    el("div", { class: "muted" }, n.jobs.length ? `jobs in hand: ${n.jobs.join(", ")}` : "no job in hand"),
    el("div", { class: "muted" }, `actors alive: ${alive(n.nodeId).join(", ") || "none"}`))) : [el("li", { class: "muted" }, "no node alive")]));
}

function renderSpend() {
  const run = view.status?.run;
  const budget = view.config?.budgetUsd;
  const spent = run?.spentUsd ?? 0;
  const parts = [el("div", {}, `spent $${spent.toFixed(4)}${budget ? ` of $${budget.toFixed(4)}` : " (no budget set)"}`)];
  if (budget) parts.push(el("div", { class: "bar" }, el("div", { style: `width:${Math.min(100, (100 * spent) / budget).toFixed(1)}%` })));
  if (run) parts.push(el("div", { class: "muted" }, `swarm ${run.lease}; pipeline ${run.pipeline ?? "not started"}`));
  $("spend").replaceChildren(...parts);
  const queued = Object.entries(run?.queued ?? {});
  $("queues").replaceChildren(...(queued.length ? queued.map(([k, n]) => el("li", { "data-queue": k }, `${k}: ${n} queued`)) : [el("li", { class: "muted" }, "no job queued")]));
}

/** Whether something said at `ms` (or the ISO time `at`) had been said by the moment shown. */
const saidBy = (ms) => view.live || ms <= view.t;
const said = (at) => saidBy(Date.parse(at));

function renderIdeas() {
  const outcomes = view.outcomes.filter((o) => said(o.outcome.at));
  const accepted = [...view.accepted.values()].filter((a) => said(a.at));
  // Scrubbed back, the ideas are those said by then; live, also those the pipeline's snapshot holds.
  const ids = new Set([...accepted.map((a) => a.ideaId), ...(view.live ? (view.status?.run?.ideas ?? []).map((i) => i.ideaId) : []), ...outcomes.map((o) => o.outcome.ideaId).filter(Boolean)]);
  const items = [];
  for (const ideaId of ids) {
    const of = (...kinds) => outcomes.filter((o) => o.outcome.ideaId === ideaId && kinds.includes(o.kind));
    const ideaActor = [...view.actors.values()].find((a) => a.machine === "idea" && a.ideaId === ideaId);
    const ev = ideaActor && current(ideaActor);
    const stage = ev ? stateText(ev.state) : (view.status?.run?.ideas.find((i) => i.ideaId === ideaId)?.state ?? "proposed");
    const li = el("li", { "data-idea": ideaId }, el("strong", {}, ideaId), ` · ${stage}`);
    const title = view.accepted.get(ideaId)?.idea.Title;
    if (title) li.append(el("div", { class: "muted" }, title));
    const links = el("div");
    for (const o of of("experiment", "gpuExperiment")) if (o.outcome.ok) for (const f of o.outcome.result.figures ?? []) links.append(el("a", { href: artifactUrl(`${view.runId}/${ideaId}/${f}`), target: "_blank" }, f), " ");
    const tree = treeOf(of("experiment", "gpuExperiment"));
    if (tree) li.append(tree);
    for (const o of of("write")) if (o.outcome.ok) links.append(el("a", { href: artifactUrl(o.outcome.result.pdf), target: "_blank", class: "paper" }, "paper (PDF)"), " ", el("a", { href: artifactUrl(o.outcome.result.tex), target: "_blank" }, "TeX"), " ");
    li.append(links);
    const reviews = of("review").filter((o) => o.outcome.ok);
    if (reviews.length) {
      const list = el("ul", { class: "reviews" });
      for (const o of reviews) {
        const r = o.outcome.result.review;
        list.append(el("li", { class: "review" }, el("details", {}, el("summary", {}, `review by ${o.identity}@${o.outcome.by.node}: Overall ${r.Overall}, ${r.Decision}`), el("pre", {}, JSON.stringify(r, null, 2)))));
      }
      li.append(list);
    }
    for (const o of of("chair")) if (o.outcome.ok) li.append(el("details", { class: "decision" }, el("summary", {}, `decision: ${o.outcome.result.decision} (round ${o.outcome.result.round})`), el("pre", {}, o.outcome.result.metaReview)));
    items.push(li);
  }
  $("ideas").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "no idea yet")]));
}

/**
 * A tree search as it grows, from its nodes' outcomes: each node under the one it was made from, with its stage,
 * what it changed and its metric; seed re-runs under the node they re-ran.
 */
function treeOf(outcomes) {
  const nodes = outcomes.filter((o) => o.outcome.ok && o.outcome.result.node).map((o) => ({ ...o.outcome.result, by: o.outcome.by.node }));
  if (!nodes.length) return undefined;
  const children = (parent) => nodes.filter((n) => (n.parent ?? "root") === parent);
  const item = (n) => {
    const value = typeof n.value === "number" ? n.value.toPrecision(4) : "";
    const li = el("li", { class: `tree-node ${n.ok ? "works" : "buggy"}`, "data-node": n.node },
      el("strong", {}, n.node), n.stage ? ` ${n.stage}` : "", ` · ${n.ok ? value || "works" : "buggy"} · `, el("span", { class: "muted" }, `${n.description} (${n.by})`));
    const below = children(n.node);
    if (below.length) li.append(el("ul", { class: "tree" }, ...below.map(item)));
    return li;
  };
  return el("details", { class: "tree", open: true }, el("summary", {}, `tree search: ${nodes.filter((n) => !n.node.includes("-s")).length} nodes, ${nodes.filter((n) => n.node.includes("-s")).length} seed runs`),
    el("ul", { class: "tree" }, el("li", {}, el("strong", {}, "baseline"), children("root").length ? el("ul", { class: "tree" }, ...children("root").map(item)) : "")));
}

function renderFailures() {
  const items = [];
  for (const o of view.outcomes.filter((x) => said(x.outcome.at))) {
    const out = o.outcome;
    if (!out.ok) {
      items.push(el("li", {}, el("strong", { class: "bad" }, `${o.kind} ${out.ideaId ?? ""}`), ` on ${out.by.node}: ${out.failure.kind}${out.failure.retryable ? " (retryable)" : ""}: ${out.failure.message}`,
        out.failure.hint ? el("div", { class: "muted" }, `hint: ${out.failure.hint}`) : null));
    } else if (o.kind === "ideate") {
      for (const idea of out.result.ideas) if (idea.failure) items.push(el("li", {}, el("strong", { class: "bad" }, idea.ideaId), `: ${idea.failure.kind}: ${idea.failure.message}`));
      for (const f of out.result.failures ?? []) items.push(el("li", {}, el("strong", { class: "bad" }, "proposal"), `: ${f}`));
    }
  }
  $("failures").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "none")]));
}

/** Who asked whom, in order: one row per answer, an arrow from the lane that answered to the lane that asked. */
function renderSequence() {
  const seq = $("sequence");
  if (!seq.childElementCount) {
    seq.style.gridTemplateColumns = `auto repeat(${LANES.length}, minmax(7rem, 1fr))`;
    seq.append(el("div", { class: "lane" }, "time"), ...LANES.map((l) => el("div", { class: "lane" }, l)));
  }
  for (; view.shownMessages < view.messages.length; view.shownMessages++) {
    const m = view.messages[view.shownMessages];
    const from = Math.max(0, LANES.indexOf(m.from));
    const to = Math.max(0, LANES.indexOf(m.to));
    const [a, b] = from <= to ? [from, to] : [to, from];
    const content = el("pre", { class: "content", hidden: true }, JSON.stringify(m.content, null, 2));
    const arrow = el("div", { class: `arrow ${from <= to ? "right" : "left"}${m.ok ? "" : " failed"}`, title: m.label, "data-from": m.from, "data-to": m.to },
      from <= to ? `${m.from} → ${m.to}: ${m.label}` : `${m.to} ← ${m.from}: ${m.label}`);
    // Rows placed by number: an arrow that starts right of the first lane leaves no gap for the next row to fill.
    const row = 2 + 2 * view.shownMessages;
    const stamp = el("div", { class: "time" }, time(m.at));
    stamp.style.gridArea = `${row} / 1`;
    arrow.style.gridArea = `${row} / ${a + 2} / ${row + 1} / ${b + 3}`;
    content.style.gridRow = String(row + 1);
    arrow.addEventListener("click", () => { content.hidden = !content.hidden; });
    for (const e of [stamp, arrow, content]) e.dataset.ms = String(Date.parse(m.at));
    seq.append(stamp, arrow, content);
  }
  // Scrubbed back, what was said after that moment is not shown.
  for (const e of seq.querySelectorAll(".time, .arrow")) e.hidden = !saidBy(Number(e.dataset.ms));
}

// ---- the run picker and the slider ----

async function loadRuns() {
  const runs = await fetch("/api/runs").then((r) => (r.ok ? r.json() : []));
  const select = $("run");
  const chosen = new URLSearchParams(location.search).get("run") || (runs.length ? runs[runs.length - 1].runId : null);
  if (select.options.length !== runs.length) {
    select.replaceChildren(...runs.map((r) => el("option", { value: r.runId }, `${r.runId} · ${r.template} · ${r.lease}`)));
  }
  if (chosen && chosen !== view.runId && (followNewest || !view.runId)) connect(chosen);
  if (view.runId) select.value = view.runId;
}

$("run").addEventListener("change", (e) => {
  followNewest = false;
  history.replaceState(null, "", `?run=${encodeURIComponent(e.target.value)}`);
  connect(e.target.value);
});
$("time").addEventListener("input", (e) => {
  view.live = false;
  view.t = Number(e.target.value);
  schedule();
});
$("live").addEventListener("click", () => {
  view.live = true;
  schedule();
});

// ---- gates: where the run waits for a person (--gate) ----

/** The token in the URL the swarm printed (`#gate=…`): with it this page may decide; without it, it only shows. */
const gateToken = new URLSearchParams(location.hash.slice(1)).get("gate");
/** What each gate shows, in a line. */
function gateText(g) {
  const p = g.proposal;
  if (p.gate === "ideas") return `"${p.idea.Title}": ${p.idea.Experiment}`;
  if (p.gate === "plan") return p.plan.map((r, i) => `run_${i + 1}: ${r.description}`).join(" · ");
  return `paper version ${p.round}`;
}
let gatesShown = "";
async function loadGates() {
  if (!view.runId) return;
  const runId = view.runId;
  const r = await fetch(`/api/gates?run=${encodeURIComponent(runId)}`).catch(() => null);
  if (!r || !r.ok || runId !== view.runId) return;
  const { canDecide, gates } = await r.json();
  const key = JSON.stringify(gates);
  // Rebuilt only when a gate changed: a person's half-typed edit is not thrown away.
  if (key === gatesShown) return;
  gatesShown = key;
  const decide = async (g, body, note) => {
    const res = await fetch(`/api/gates?run=${encodeURIComponent(g.runId)}&idea=${encodeURIComponent(g.ideaId)}&request=${encodeURIComponent(g.request)}`, {
      method: "POST", headers: { "Content-Type": "application/json", "X-Swarm-Gate": gateToken || "" }, body: JSON.stringify(body),
    });
    note.textContent = res.ok ? "decided" : await res.text();
    if (res.ok) loadGates();
  };
  $("gates").replaceChildren(...gates.map((g) => {
    // A gate asked and never decided that a rewind has passed by: the idea asks anew.
    const superseded = g.state === "superseded";
    const item = el("li", { class: g.decided || superseded ? "" : "waiting", "data-gate": `${g.ideaId}/${g.request}` },
      el("strong", {}, `${g.ideaId} · ${g.proposal.gate}`), " ",
      g.decided ? `${g.decided.decision.choice} by ${g.decided.by}${g.decided.decision.reason ? `: ${g.decided.decision.reason}` : ""}` : superseded ? "superseded by a rewind" : "waiting", el("br"),
      gateText(g));
    if (g.proposal.gate === "paper") item.append(" ", el("a", { href: artifactUrl(g.proposal.pdf), target: "_blank", rel: "noopener" }, "PDF"));
    if (!g.decided && !superseded && canDecide && gateToken) {
      const note = el("span", { class: "note" });
      const text = el("textarea", { rows: 6, cols: 60, "aria-label": "edit" });
      text.value = g.editable;
      const reason = el("input", { type: "text", placeholder: "why (to reject)", "aria-label": "reason" });
      const approve = el("button", { type: "button", "data-choice": "approve" }, "approve");
      const edit = el("button", { type: "button", "data-choice": "edit" }, "go on as edited");
      const reject = el("button", { type: "button", "data-choice": "reject" }, "reject");
      approve.addEventListener("click", () => decide(g, { choice: "approve" }, note));
      edit.addEventListener("click", () => decide(g, { choice: "edit", text: text.value }, note));
      reject.addEventListener("click", () => (reason.value.trim() ? decide(g, { choice: "reject", reason: reason.value }, note) : (note.textContent = "say why")));
      item.append(el("br"), approve, " ", reject, " ", reason, el("details", {}, el("summary", {}, "edit"), text, el("br"), edit), note);
    } else if (!g.decided && !superseded) item.append(el("br"), el("em", {}, "decide with: npm run gate -- approve|edit|reject ", g.runId, " ", g.ideaId));
    return item;
  }));
}

loadRuns();
setInterval(loadRuns, 5000);
setInterval(() => void loadGates(), 2000);
