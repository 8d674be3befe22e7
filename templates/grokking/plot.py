"""Plot grokking results for the run folders listed in `labels`.

Run from the folder that holds the run_* directories:  python plot.py
Writes into the current directory:
  accuracy_curves.png   train (dashed) and validation (solid) accuracy vs. step, one panel per dataset
  loss_curves.png       train (dashed) and validation (solid) loss vs. step, one panel per dataset
  steps_to_99.png       first step with >= 99% validation accuracy, per dataset and run
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# Map run folder -> legend label. Only folders listed here (and present) are plotted.
labels = {
    "run_0": "Baseline",
}

DATASETS = ("x_plus_y", "x_minus_y", "x_div_y", "permutation")
TITLES = {"x_plus_y": "x + y (mod p)", "x_minus_y": "x - y (mod p)", "x_div_y": "x / y (mod p)", "permutation": "permutation composition"}


def _numpy2_pickle_shim():
    """Let numpy 1.x unpickle object arrays written by numpy 2.x (numpy._core)."""
    try:
        import numpy._core  # noqa: F401
        import numpy._core.multiarray  # noqa: F401
    except ImportError:
        import numpy.core
        import numpy.core.multiarray

        sys.modules.setdefault("numpy._core", numpy.core)
        sys.modules.setdefault("numpy._core.multiarray", numpy.core.multiarray)


def load_run(folder):
    _numpy2_pickle_shim()
    results = np.load(os.path.join(folder, "all_results.npy"), allow_pickle=True).item()
    with open(os.path.join(folder, "final_info.json")) as f:
        final_info = json.load(f)
    return results, final_info


def curve_figure(runs, key, ylabel, filename, log_y=False):
    colors = plt.get_cmap("tab10").colors
    fig, axes = plt.subplots(1, len(DATASETS), figsize=(4.2 * len(DATASETS), 3.6), squeeze=False)
    for ax, dataset in zip(axes[0], DATASETS):
        for i, (label, results, _) in enumerate(runs.values()):
            if dataset not in results:
                continue
            r = results[dataset]
            steps = np.asarray(r["step"], dtype=float)
            color = colors[i % len(colors)]
            for split, style in (("train", "--"), ("val", "-")):
                mean = np.asarray(r[f"{split}_{key}"], dtype=float)
                err = np.asarray(r.get(f"{split}_{key}_stderr", np.zeros_like(mean)), dtype=float)
                ax.plot(steps, mean, style, color=color, linewidth=1.5, label=f"{label} ({split})")
                if split == "val":
                    ax.fill_between(steps, mean - err, mean + err, color=color, alpha=0.2, linewidth=0)
        ax.set_title(TITLES.get(dataset, dataset))
        ax.set_xlabel("optimisation step")
        ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(filename, dpi=150)
    plt.close(fig)


def main():
    runs = {}
    for folder, label in labels.items():
        if os.path.isfile(os.path.join(folder, "all_results.npy")) and os.path.isfile(
            os.path.join(folder, "final_info.json")
        ):
            runs[folder] = (label, *load_run(folder))
        else:
            print(f"plot.py: skipping {folder!r} (no results found)")
    if not runs:
        print("plot.py: nothing to plot")
        return

    curve_figure(runs, "acc", "accuracy (train dashed, validation solid)", "accuracy_curves.png")
    curve_figure(runs, "loss", "cross-entropy (train dashed, validation solid)", "loss_curves.png", log_y=True)

    # --- steps until validation accuracy first reaches 99%: grouped bars ---
    colors = plt.get_cmap("tab10").colors
    n_runs = len(runs)
    width = 0.8 / n_runs
    x = np.arange(len(DATASETS))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 + 0.5 * n_runs * len(DATASETS)), 4.0))
    budget = 0
    for i, (label, results, final_info) in enumerate(runs.values()):
        means = [final_info.get(d, {}).get("means", {}).get("step_val_acc_99", np.nan) for d in DATASETS]
        errs = [final_info.get(d, {}).get("stderrs", {}).get("step_val_acc_99", 0.0) for d in DATASETS]
        budget = max([budget] + [results[d].get("num_steps", 0) for d in DATASETS if d in results])
        ax.bar(x + (i - (n_runs - 1) / 2.0) * width, means, width, yerr=errs, capsize=3, label=label, color=colors[i % len(colors)])
    if budget:
        ax.axhline(budget, color="black", linestyle=":", linewidth=1, label="step budget (never reached 99%)")
    ax.set_xticks(x)
    ax.set_xticklabels([TITLES.get(d, d) for d in DATASETS], fontsize=8)
    ax.set_ylabel("first step with validation accuracy >= 99%")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig("steps_to_99.png", dpi=150)
    plt.close(fig)
    print("plot.py: wrote accuracy_curves.png, loss_curves.png and steps_to_99.png")


if __name__ == "__main__":
    main()
