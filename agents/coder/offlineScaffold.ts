import { OFFLINE_NOTE, respond } from "../llm/offline/registry.js";
import { parseTopic, type TopicParts } from "../topic.js";
import { fixTemplate, writeTemplate, type TemplateFiles } from "./scaffoldPrompts.js";

// The offline stand-in's template for a topic: a small, real numpy experiment on the topic's question, one of a
// few families chosen by the topic's words, each putting the setting its question is about first among the knobs
// (the offline ideator sweeps the first knob no earlier idea has).

interface Knob {
  name: string;
  literal: string;
  comment: string;
}

const KNOBS: Record<string, Knob> = {
  LEARNING_RATE: { name: "LEARNING_RATE", literal: "0.1", comment: "SGD step size" },
  WEIGHT_DECAY: { name: "WEIGHT_DECAY", literal: "0.001", comment: "L2 penalty coefficient on the weight matrices (not biases)" },
  LABEL_NOISE: { name: "LABEL_NOISE", literal: "0.1", comment: "fraction of training labels flipped at random (test labels stay clean)" },
  N_TRAIN_SAMPLES: { name: "N_TRAIN_SAMPLES", literal: "400", comment: "training examples per dataset" },
  HIDDEN_UNITS: { name: "HIDDEN_UNITS", literal: "32", comment: "width of the single hidden layer" },
  EPOCHS: { name: "EPOCHS", literal: "60", comment: "passes over the training set" },
  BATCH_SIZE: { name: "BATCH_SIZE", literal: "32", comment: "mini-batch size" },
};

export interface Family {
  name: string;
  /** Words of a topic that point to it. */
  words: RegExp;
  /** The knob the topic's question is about. */
  knob: keyof typeof KNOBS;
  /** What the experiment varies, in the task description's words. */
  studies: string;
}

/** The families in the order a tie goes; a topic that names none of their words gets the first. */
export const FAMILIES: Family[] = [
  {
    name: "optimisation",
    words: /learning[- ]rates?|step[- ]sizes?|optimi[sz]\w*|converge\w*|momentum|\bsgd\b|gradient descent|training dynamics|schedul\w*/g,
    knob: "LEARNING_RATE",
    studies: "how the SGD step size shapes training and generalisation",
  },
  {
    name: "regularisation",
    words: /regulari[sz]\w*|weight[- ]decay|\bl2\b|overfit\w*|penalt\w*|generali[sz]\w*|implicit bias/g,
    knob: "WEIGHT_DECAY",
    studies: "how L2 weight decay trades the fit to the training set against test accuracy",
  },
  {
    name: "label noise",
    words: /label[- ]noise|noisy[- ]labels?|\bnois\w*|corrupt\w*|robust\w*|mislabel\w*|memori[sz]\w*/g,
    knob: "LABEL_NOISE",
    studies: "how flipped training labels hurt test accuracy and how much of them the network memorises",
  },
  {
    name: "data efficiency",
    words: /sample[- ]sizes?|data[- ]efficien\w*|few[- ]shot|amount of (?:training )?data|training[- ]set size|data scaling|sample complexity|small data|number of (?:training )?examples|low[- ]data/g,
    knob: "N_TRAIN_SAMPLES",
    studies: "how test accuracy grows with the number of training examples",
  },
  {
    name: "capacity",
    words: /\bwidth\b|\bwider\b|capacity|over-?parameteri[sz]\w*|hidden units|model size|parameter count|number of parameters|scaling laws?/g,
    knob: "HIDDEN_UNITS",
    studies: "how the width of the hidden layer (the model's capacity) affects fit and generalisation",
  },
];

/** The family whose words the topic uses most (its title counts twice), ties to the earlier one. */
export function familyOf(parts: TopicParts): Family {
  const text = `${parts.title} ${parts.title} ${parts.keywords.join(" ")} ${parts.tldr} ${parts.abstract}`.toLowerCase();
  let best = FAMILIES[0]!;
  let most = 0;
  for (const f of FAMILIES) {
    const n = text.match(f.words)?.length ?? 0;
    if (n > most) [best, most] = [f, n];
  }
  return best;
}

/** Text safe inside a Python docstring and a LaTeX comment: one line, no backslash or quote run. */
const plain = (s: string) => s.replace(/[\\"`]/g, "'").replace(/[\u0000-\u001f\u007f]+/g, " ").replace(/\s+/g, " ").trim();

function experimentPy(parts: TopicParts, family: Family): string {
  const order = [KNOBS[family.knob]!, ...Object.values(KNOBS).filter((k) => k.name !== family.knob)];
  const knobLines = order.map((k) => `${k.name} = ${k.literal}  # ${k.comment}`).join("\n");
  const flags = order
    .map((k) => `    parser.add_argument("--${k.name.toLowerCase()}", type=${k.literal.includes(".") ? "float" : "int"}, default=${k.name}, help="${k.comment}")`)
    .join("\n");
  return `"""${plain(parts.title)}: a small numpy experiment on the topic's question.

Question: ${plain(parts.question)}
Experiment family: ${family.name} (${family.studies}); the setting it is about, ${family.knob}, is the first knob.

${OFFLINE_NOTE}: the offline stand-in wrote this file from the topic by a fixed recipe.

Trains a one-hidden-layer tanh network (hand-written forward and backward pass, mini-batch SGD with momentum
and L2 weight decay) on two synthetic binary classification tasks in 8 dimensions ("teacher": labels of a
random two-layer network; "xor": the sign of the product of the first two coordinates, six nuisance
dimensions), over three seeds, and writes

  <out_dir>/final_info.json   {dataset: {"means": {...}, "stderrs": {...}}}
  <out_dir>/curves.json       per-epoch mean test accuracy, for plot.py

Usage: python experiment.py --out_dir=run_0   (each knob is also a flag, e.g. --${family.knob.toLowerCase()})
"""

# --- knobs ---
${knobLines}
# --- end knobs ---

import argparse
import json
import os
import time

import numpy as np

# Fixed protocol (not knobs): the tasks, the test sets and the seeds stay the same, so runs are comparable.
DATASETS = ("teacher", "xor")
# SWARM_SEED moves every seed to a fresh set (re-runs on other seeds); unset, 0.
SEED_SET = int(os.environ.get("SWARM_SEED", "0"))
SEEDS = tuple(1000 * SEED_SET + s for s in (0, 1, 2))
N_FEATURES = 8
N_TEST = 1000
MOMENTUM = 0.9
DATA_SEED = 4321
LOSS_CAP = float(-np.log(1e-12))


def make_data(name, n, rng):
    x = rng.normal(0.0, 1.0, (n, N_FEATURES))
    if name == "teacher":
        teacher = np.random.default_rng(DATA_SEED)
        w = teacher.normal(0.0, 1.0, (N_FEATURES, 4))
        v = teacher.normal(0.0, 1.0, 4)
        y = (np.tanh(x @ w) @ v > 0.0).astype(np.int64)
    else:
        y = (x[:, 0] * x[:, 1] > 0.0).astype(np.int64)
    return x, y


def load_dataset(name, n_train, label_noise):
    """Training set with label noise, and a clean test set that does not depend on the knobs."""
    index = DATASETS.index(name)
    x_train, y_train = make_data(name, max(1, int(n_train)), np.random.default_rng([DATA_SEED, index, 0]))
    x_test, y_test = make_data(name, N_TEST, np.random.default_rng([DATA_SEED, index, 1]))
    flip = np.random.default_rng([DATA_SEED, index, 2]).random(len(y_train)) < label_noise
    return x_train, np.where(flip, 1 - y_train, y_train), x_test, y_test


def forward(params, x):
    z1 = x @ params["W1"] + params["b1"]
    a1 = np.tanh(z1)
    return a1, a1 @ params["W2"] + params["b2"]


def softmax_xent(logits, y):
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    probs /= probs.sum(axis=1, keepdims=True)
    loss = float(np.mean(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))))
    return min(loss, LOSS_CAP), probs


def gradients(params, x, y, weight_decay):
    a1, logits = forward(params, x)
    _, probs = softmax_xent(logits, y)
    d = probs
    d[np.arange(len(y)), y] -= 1.0
    d /= len(y)
    dz1 = (d @ params["W2"].T) * (1.0 - a1 * a1)
    return {
        "W1": x.T @ dz1 + weight_decay * params["W1"],
        "b1": dz1.sum(axis=0),
        "W2": a1.T @ d + weight_decay * params["W2"],
        "b2": d.sum(axis=0),
    }


def accuracy(params, x, y):
    logits = np.nan_to_num(forward(params, x)[1], nan=0.0, posinf=1e300, neginf=-1e300)
    return float(np.mean(np.argmax(logits, axis=1) == y))


def train_one(data, seed, args):
    x_train, y_train, x_test, y_test = data
    rng = np.random.default_rng(seed)
    width = max(1, int(args.hidden_units))
    params = {
        "W1": rng.normal(0.0, 1.0 / np.sqrt(N_FEATURES), (N_FEATURES, width)),
        "b1": np.zeros(width),
        "W2": rng.normal(0.0, 1.0 / np.sqrt(width), (width, 2)),
        "b2": np.zeros(2),
    }
    velocity = {k: np.zeros_like(v) for k, v in params.items()}
    n = len(x_train)
    batch = max(1, int(args.batch_size))
    epochs = max(1, int(args.epochs))
    curve = []
    t0 = time.perf_counter()
    with np.errstate(all="ignore"):
        for epoch in range(epochs):
            order = rng.permutation(n)
            for start in range(0, n, batch):
                idx = order[start:start + batch]
                grads = gradients(params, x_train[idx], y_train[idx], args.weight_decay)
                for k in params:
                    velocity[k] = MOMENTUM * velocity[k] + grads[k]
                    params[k] -= args.learning_rate * velocity[k]
            if not all(np.all(np.isfinite(v)) for v in params.values()):
                curve.extend([accuracy(params, x_test, y_test)] * (epochs - epoch))
                break
            curve.append(accuracy(params, x_test, y_test))
        train_loss = softmax_xent(forward(params, x_train)[1], y_train)[0] if all(np.all(np.isfinite(v)) for v in params.values()) else LOSS_CAP
    train_acc = accuracy(params, x_train, y_train)
    test_acc = accuracy(params, x_test, y_test)
    return {
        "test_accuracy": test_acc,
        "train_accuracy": train_acc,
        "generalization_gap": train_acc - test_acc,
        "final_train_loss": train_loss,
        "train_time_s": time.perf_counter() - t0,
        "curve": curve,
    }


def mean_stderr(values):
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def main():
    parser = argparse.ArgumentParser(description="${plain(parts.title).replace(/%/g, "%%")}")
    parser.add_argument("--out_dir", type=str, default="run_0")
${flags}
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)

    metrics = ("test_accuracy", "train_accuracy", "generalization_gap", "final_train_loss", "train_time_s")
    final_info, curves = {}, {}
    for name in DATASETS:
        data = load_dataset(name, args.n_train_samples, args.label_noise)
        runs = [train_one(data, seed, args) for seed in SEEDS]
        means, stderrs = {}, {}
        for m in metrics:
            means[m], stderrs[m] = mean_stderr([r[m] for r in runs])
        final_info[name] = {"means": means, "stderrs": stderrs}
        curves[name] = np.mean([r["curve"] for r in runs], axis=0).tolist()
        print(f"{name:8s} test_acc={means['test_accuracy']:.4f}+-{stderrs['test_accuracy']:.4f} gap={means['generalization_gap']:.4f}")

    with open(os.path.join(args.out_dir, "final_info.json"), "w") as f:
        json.dump(final_info, f, indent=2)
    with open(os.path.join(args.out_dir, "curves.json"), "w") as f:
        json.dump(curves, f)


if __name__ == "__main__":
    main()
`;
}

function plotPy(parts: TopicParts): string {
  return `"""Plots for ${plain(parts.title)}: the runs listed in \`labels\`, from their run_*/final_info.json and curves.json.

${OFFLINE_NOTE}: the offline stand-in wrote this file from the topic by a fixed recipe.

Run from the folder that holds the run_* directories:  python plot.py
Writes test_accuracy.png and test_accuracy_curves.png into the current directory.
"""
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# Map run folder -> legend label. Only folders listed here (and present) are plotted.
labels = {
    "run_0": "Baseline",
}


def load(folder):
    with open(os.path.join(folder, "final_info.json")) as f:
        info = json.load(f)
    curves = {}
    if os.path.isfile(os.path.join(folder, "curves.json")):
        with open(os.path.join(folder, "curves.json")) as f:
            curves = json.load(f)
    return info, curves


def main():
    runs = {}
    for folder, label in labels.items():
        if os.path.isfile(os.path.join(folder, "final_info.json")):
            runs[folder] = (label, *load(folder))
        else:
            print(f"plot.py: skipping {folder!r} (no final_info.json)")
    if not runs:
        print("plot.py: nothing to plot")
        return
    datasets = sorted({d for _, info, _ in runs.values() for d in info})
    colors = plt.get_cmap("tab10").colors

    width = 0.8 / len(runs)
    x = np.arange(len(datasets))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.5 + 0.6 * len(runs) * len(datasets)), 3.8))
    for i, (folder, (label, info, _)) in enumerate(runs.items()):
        means = [info.get(d, {}).get("means", {}).get("test_accuracy", np.nan) for d in datasets]
        errs = [info.get(d, {}).get("stderrs", {}).get("test_accuracy", 0.0) for d in datasets]
        ax.bar(x + (i - (len(runs) - 1) / 2.0) * width, means, width, yerr=errs, capsize=3, label=label, color=colors[i % len(colors)])
    ax.set_xticks(x)
    ax.set_xticklabels(datasets)
    ax.set_ylabel("test accuracy (mean +- s.e., 3 seeds)")
    ax.set_ylim(0.4, 1.0)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig("test_accuracy.png", dpi=150)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        for i, (folder, (label, _, curves)) in enumerate(runs.items()):
            if dataset in curves:
                ax.plot(np.arange(1, len(curves[dataset]) + 1), curves[dataset], label=label, color=colors[i % len(colors)])
        ax.set_title(dataset)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("mean test accuracy")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig("test_accuracy_curves.png", dpi=150)
    plt.close(fig)
    print("plot.py: wrote test_accuracy.png and test_accuracy_curves.png")


if __name__ == "__main__":
    main()
`;
}

function promptJson(parts: TopicParts, family: Family): TemplateFiles["prompt_json"] {
  const knob = KNOBS[family.knob]!;
  const others = Object.values(KNOBS).filter((k) => k !== knob);
  return {
    system: `You are an ambitious, rigorous machine learning researcher working on "${parts.title}". You test one clear hypothesis at a time with controlled comparisons against a baseline, several seeds and error bars, and you report negative results as plainly as positive ones.`,
    task_description: [
      `You are given experiment.py, a small numpy experiment on ${family.studies}, written for the topic "${parts.title}".`,
      `The topic asks: ${parts.question}`,
      `It trains a one-hidden-layer tanh network with a hand-written forward and backward pass, mini-batch SGD with momentum 0.9 and L2 weight decay, on two synthetic binary classification tasks in 8 dimensions: 'teacher' (labels of a random two-layer network) and 'xor' (the sign of the product of the first two coordinates, with six nuisance dimensions), each with a clean test set of 1000 points, over 3 seeds.`,
      `The tunable settings are the constants between '# --- knobs ---' and '# --- end knobs ---': ${knob.name} (${knob.comment}, default ${knob.literal}), the one the question is about, and ${others.map((k) => `${k.name} (${k.comment}, default ${k.literal})`).join(", ")}.`,
      "Run it as 'python experiment.py --out_dir=run_i'; a run takes about a second on a CPU. It writes run_i/final_info.json with, for each task, the mean and standard error over seeds of test_accuracy (higher is better), train_accuracy (on the noisy training labels), generalization_gap (train minus test accuracy), final_train_loss and train_time_s, and run_i/curves.json with the per-epoch mean test accuracy.",
      "plot.py draws test_accuracy.png and test_accuracy_curves.png for the runs listed in its 'labels' dictionary.",
      `This template was ${OFFLINE_NOTE}.`,
    ].join(" "),
  };
}

/** The offline template for a topic, but for its LaTeX (which the writing task is given as its example). */
export function offlineTemplate(topic: string): Omit<TemplateFiles, "template_tex"> & { family: Family; parts: TopicParts } {
  const parts = parseTopic(topic);
  const family = familyOf(parts);
  return { experiment_py: experimentPy(parts, family), plot_py: plotPy(parts), prompt_json: promptJson(parts, family), family, parts };
}

respond(writeTemplate, (d) => {
  const { family, parts, ...files } = offlineTemplate(d.topic);
  const note = `% ${OFFLINE_NOTE}: the offline stand-in took this LaTeX template unchanged from the example it was given, for the topic "${plain(parts.title)}" (experiment family: ${family.name}).\n`;
  return { ...files, template_tex: note + d.latexExample };
});

respond(fixTemplate, (d) => {
  // Without a model to read the traceback, the files are written afresh from the topic; the LaTeX is kept.
  const { family: _family, parts: _parts, ...files } = offlineTemplate(d.topic);
  return { explanation: `wrote experiment.py, plot.py and prompt.json afresh from the topic (fix ${d.fix}; ${OFFLINE_NOTE})`, ...files };
});
