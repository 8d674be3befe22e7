"""Draws the review benchmark's picture: Overall by true decision, and the ROC curve.

Reads one JSON object on stdin (see agents/reviewBench/plot.ts) and writes a PNG to its "out" path.
"""
import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

d = json.load(sys.stdin)
accept, reject = d["accept"], d["reject"]
scores = accept + reject

fig, (hist, roc) = plt.subplots(1, 2, figsize=(12, 4.8))

# The whole 1-10 scale, so pictures of different reviewers compare at a glance. Integer scores get one bar
# per score; ensemble means get quarter-point bins whose edges fall on the integers.
integer = all(float(s).is_integer() for s in scores)
bins = [k - 0.5 for k in range(1, 12)] if integer else [0.5 + 0.25 * k for k in range(41)]
hist.hist(
    [accept, reject],
    bins=bins,
    color=["tab:green", "tab:red"],
    label=[f"accepted (n={len(accept)})", f"rejected (n={len(reject)})"],
)
if d.get("threshold") is not None:
    # With one bar per integer score, ">= t" separates the bars at ceil(t) - 0.5.
    cut = math.ceil(d["threshold"]) - 0.5 if integer else d["threshold"]
    hist.axvline(cut, color="black", linestyle="--", linewidth=1, label=f"accept when Overall >= {d['threshold']:g}")
hist.set_xlim(0.5, 10.5)
hist.set_xticks(range(1, 11))
hist.set_xlabel("reviewer's Overall score")
hist.set_ylabel("papers")
hist.yaxis.set_major_locator(MaxNLocator(integer=True))
hist.set_title("Overall by the true decision")
hist.legend()

roc.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance (AUC 0.5)")
if d["roc"]["fpr"]:
    auc = d["auc"]
    interval = "" if d.get("aucLo") is None else f" [{d['aucLo']:.2f}, {d['aucHi']:.2f}]"
    roc.plot(d["roc"]["fpr"], d["roc"]["tpr"], color="tab:blue", marker="o", markersize=3,
             label=f"Overall: AUC {auc:.3f}{interval}")
if d.get("point"):
    roc.plot([d["point"]["fpr"]], [d["point"]["tpr"]], "k*", markersize=12, label=d["point"]["label"])
roc.set_xlim(0, 1)
roc.set_ylim(0, 1.01)
roc.set_aspect("equal")
roc.set_xlabel("false positive rate (rejected papers accepted)")
roc.set_ylabel("true positive rate (accepted papers accepted)")
roc.set_title("ROC")
roc.legend(loc="lower right")

fig.suptitle(d["title"], fontsize=10)
fig.tight_layout()
fig.savefig(d["out"], dpi=150)
