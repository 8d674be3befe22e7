"""Plot 2d_diffusion results for the run folders listed in `labels`.

Run from the folder that holds the run_* directories:  python plot.py
Writes into the current directory:
  train_loss.png          training-loss curves, one panel per dataset, one curve per run
  generated_images.png    generated points: one row per run, one column per dataset
                          (real data in light grey underneath)
  kl_divergence.png       histogram KL(real || generated) per dataset and run
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

DATASETS = ("circle", "moons", "line", "spiral")


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


def smooth(y, k):
    """Trailing moving average over k points (same length as y)."""
    y = np.asarray(y, dtype=float)
    if k <= 1 or len(y) < 2:
        return y
    c = np.cumsum(np.insert(y, 0, 0.0))
    out = np.empty_like(y)
    for i in range(len(y)):
        lo = max(0, i + 1 - k)
        out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return out


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

    # --- training loss: one panel per dataset ---
    fig, axes = plt.subplots(1, len(DATASETS), figsize=(4.2 * len(DATASETS), 3.6), squeeze=False)
    for ax, dataset in zip(axes[0], DATASETS):
        for i, (label, results, _) in enumerate(runs.values()):
            if dataset not in results:
                continue
            r = results[dataset]
            ax.plot(r["train_loss_steps"], smooth(r["train_loss"], 5), label=label, color=colors[i % len(colors)], linewidth=1.4)
        ax.set_title(dataset)
        ax.set_xlabel("training step")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("noise-prediction MSE (window mean)")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig("train_loss.png", dpi=150)
    plt.close(fig)

    # --- generated samples: rows = runs, columns = datasets ---
    n_runs = len(runs)
    fig, axes = plt.subplots(n_runs, len(DATASETS), figsize=(3.2 * len(DATASETS), 3.2 * n_runs), squeeze=False)
    for row, (label, results, final_info) in enumerate(runs.values()):
        for col, dataset in enumerate(DATASETS):
            ax = axes[row][col]
            if dataset in results:
                r = results[dataset]
                real = np.asarray(r["real"], dtype=float)
                gen = np.asarray(r["generated"], dtype=float)
                ax.scatter(real[:, 0], real[:, 1], s=2, color="0.8", linewidths=0)
                ax.scatter(gen[:, 0], gen[:, 1], s=2, color=colors[row % len(colors)], alpha=0.6, linewidths=0)
                (x0, y0), (x1, y1) = r["kl_box"]
                ax.set_xlim(x0, x1)
                ax.set_ylim(y0, y1)
                kl = final_info.get(dataset, {}).get("means", {}).get("kl_divergence")
                ax.set_title(f"{dataset}" + (f"  (KL {kl:.3f})" if kl is not None else ""), fontsize=9)
            ax.set_aspect("equal", adjustable="box")
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(label, fontsize=10)
    fig.tight_layout()
    fig.savefig("generated_images.png", dpi=120)
    plt.close(fig)

    # --- KL divergence: grouped bars with stderr ---
    width = 0.8 / n_runs
    x = np.arange(len(DATASETS))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 + 0.5 * n_runs * len(DATASETS)), 4.0))
    for i, (label, _, final_info) in enumerate(runs.values()):
        means = [final_info.get(d, {}).get("means", {}).get("kl_divergence", np.nan) for d in DATASETS]
        errs = [final_info.get(d, {}).get("stderrs", {}).get("kl_divergence", 0.0) for d in DATASETS]
        ax.bar(x + (i - (n_runs - 1) / 2.0) * width, means, width, yerr=errs, capsize=3, label=label, color=colors[i % len(colors)])
    ax.set_xticks(x)
    ax.set_xticklabels(DATASETS)
    ax.set_ylabel("histogram KL(real || generated), nats")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig("kl_divergence.png", dpi=150)
    plt.close(fig)
    print("plot.py: wrote train_loss.png, generated_images.png and kl_divergence.png")


if __name__ == "__main__":
    main()
