"""Plot nanofit results for the run folders listed in `labels`.

Run from the folder that holds the run_* directories:  python plot.py
Writes train_loss.png and test_accuracy.png into the current directory.
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

DATASETS = ("moons", "circles", "spirals")


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

    colors = plt.get_cmap("tab10").colors

    # --- training loss curves: one panel per dataset, one curve per run ---
    fig, axes = plt.subplots(1, len(DATASETS), figsize=(4.2 * len(DATASETS), 3.6), squeeze=False)
    for ax, dataset in zip(axes[0], DATASETS):
        for i, (folder, (label, results, _)) in enumerate(runs.items()):
            if dataset not in results:
                continue
            r = results[dataset]
            epochs = np.asarray(r["epochs"])
            mean = np.asarray(r["train_loss"])
            err = np.asarray(r.get("train_loss_stderr", np.zeros_like(mean)))
            color = colors[i % len(colors)]
            ax.plot(epochs, mean, label=label, color=color, linewidth=1.6)
            ax.fill_between(epochs, mean - err, mean + err, color=color, alpha=0.2, linewidth=0)
        ax.set_title(dataset)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("mean training cross-entropy")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig("train_loss.png", dpi=150)
    plt.close(fig)

    # --- final test accuracy: grouped bars (datasets x runs) with stderr ---
    n_runs = len(runs)
    width = 0.8 / n_runs
    x = np.arange(len(DATASETS))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 + 0.5 * n_runs * len(DATASETS)), 4.0))
    lowest = 1.0
    for i, (folder, (label, _, final_info)) in enumerate(runs.items()):
        means = [final_info.get(d, {}).get("means", {}).get("test_accuracy", np.nan) for d in DATASETS]
        errs = [final_info.get(d, {}).get("stderrs", {}).get("test_accuracy", 0.0) for d in DATASETS]
        lowest = min([lowest] + [m for m in means if np.isfinite(m)])
        ax.bar(
            x + (i - (n_runs - 1) / 2.0) * width,
            means,
            width,
            yerr=errs,
            capsize=3,
            label=label,
            color=colors[i % len(colors)],
        )
    ax.set_xticks(x)
    ax.set_xticklabels(DATASETS)
    ax.set_ylabel("test accuracy (mean ± s.e., 3 seeds)")
    ax.set_ylim(max(0.0, lowest - 0.1), 1.0)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig("test_accuracy.png", dpi=150)
    plt.close(fig)
    print("plot.py: wrote train_loss.png and test_accuracy.png")


if __name__ == "__main__":
    main()
