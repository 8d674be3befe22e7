"""The figure of a tree search, from tree.json: every variant the search ran, by stage, with its metric.

Ours, not the template's: run as `python searchFigure.py tree.json search_tree.png`. It needs only matplotlib.
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STAGES = ["implement", "tune", "research", "ablate"]
COLOURS = {"implement": "#4c72b0", "tune": "#dd8452", "research": "#55a868", "ablate": "#c44e52"}


def main(src, dst):
    with open(src) as f:
        tree = json.load(f)
    metric = tree["metric"]
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    for i, node in enumerate(tree["nodes"], start=1):
        stage = node["stage"]
        if node.get("value") is None:
            # A variant that did not run is drawn on the axis, as a cross.
            ax.scatter([i], [0], marker="x", color=COLOURS[stage], alpha=0.6, transform=ax.get_xaxis_transform())
            continue
        final = node["id"] == tree.get("final")
        ax.scatter([i], [node["value"]], color=COLOURS[stage], marker="*" if final else "o", s=160 if final else 36, zorder=3)
    baseline = next((c for c in tree.get("stats", {}).get("chosen", []) if c["node"] == "root"), None)
    if baseline:
        ax.axhline(baseline["summary"]["mean"], color="grey", linestyle="--", linewidth=1, label="baseline")
    for stage in STAGES:
        if any(n["stage"] == stage for n in tree["nodes"]):
            ax.scatter([], [], color=COLOURS[stage], label=stage)
    ax.set_xlabel("variant, in the order the search made them")
    ax.set_ylabel(f"{metric['name']} ({'higher' if metric['goal'] == 'max' else 'lower'} is better)")
    ax.set_title(f"Tree search: {len(tree['nodes'])} variants; the star is the one chosen")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(dst, dpi=150)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
