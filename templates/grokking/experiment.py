"""grokking: delayed generalisation of a small transformer on binary-operation tables.

A decoder-only transformer reads the four-token sequence  "a  op  b  ="  and
predicts the result c = a o b.  For each operation the full table of (a, b)
pairs is split once, deterministically, into a training part (TRAIN_FRACTION of
all pairs) and a validation part (the rest).  The model is trained with AdamW
(decoupled weight decay) and a linear learning-rate warm-up; training and
validation loss/accuracy are recorded along the way, so that the typical
grokking picture -- training accuracy saturates early, validation accuracy
jumps much later -- can be measured (Power et al., 2022).

Datasets (operations):
  x_plus_y     c = (a + b) mod p
  x_minus_y    c = (a - b) mod p
  x_div_y      c = a * b^(-1) mod p          (b != 0, p prime)
  permutation  c = a . b, composition of permutations of k items (group S_k)

Writes
  <out_dir>/final_info.json   {dataset: {"means": {...}, "stderrs": {...}}}
  <out_dir>/all_results.npy   per-dataset learning curves (for plot.py)

Usage: python experiment.py --out_dir run_0

Profiles (environment variable SWARM_PROFILE):
  full     (default) p = 97, S_5, 3 seeds, NUM_STEPS steps -- meant for a GPU.
  reduced  a CPU smoke-scale protocol: p = 23, S_4, 1 seed, 15 evaluations, and every step
           count (NUM_STEPS, WARMUP_STEPS) divided by REDUCED_STEP_DIVISOR (75 steps by default).
           The knobs keep their meaning; only the protocol shrinks.
"""

# --- knobs ---
LEARNING_RATE = 0.001  # peak AdamW learning rate (reached after the warm-up)
WEIGHT_DECAY = 1.0  # AdamW decoupled weight-decay coefficient, applied to all parameters
NUM_LAYERS = 2  # number of transformer blocks
DIM_MODEL = 128  # residual-stream width (embedding dimension)
NUM_HEADS = 4  # attention heads per block (must divide DIM_MODEL)
TRAIN_FRACTION = 0.5  # fraction of all (a, b) pairs used for training; the rest is validation
NUM_STEPS = 7500  # optimiser steps per training run
BATCH_SIZE = 512  # training examples per step (capped at the training-set size)
WARMUP_STEPS = 50  # linear learning-rate warm-up length in steps
# --- end knobs ---

import argparse
import itertools
import json
import math
import os
import time
import warnings

import numpy as np

# Keep idle OpenMP threads from spinning: on a busy CPU machine spinning workers
# made a 2-thread run up to 8x slower than a 1-thread run. Must precede torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

PROFILE = os.environ.get("SWARM_PROFILE", "full").strip().lower()
if PROFILE not in ("full", "reduced"):
    warnings.warn(f"unknown SWARM_PROFILE {PROFILE!r}; using 'full'")
    PROFILE = "full"
FULL = PROFILE == "full"

# Fixed experimental protocol (not tuning knobs): the data split and the seeds
# are the same in every run so that runs with different knobs are comparable.
DATASETS = ("x_plus_y", "x_minus_y", "x_div_y", "permutation")
PRIME = 97 if FULL else 23  # modulus p of the arithmetic tasks
PERM_ITEMS = 5 if FULL else 4  # permutation task uses the group S_k (120 or 24 elements)
# SWARM_SEED moves every seed to a fresh set (a tree search re-runs chosen variants on other seeds); unset, 0.
SEED_SET = int(os.environ.get("SWARM_SEED", "0"))
SEEDS = tuple(1000 * SEED_SET + s for s in ((0, 1, 2) if FULL else (0,)))
REDUCED_STEP_DIVISOR = 100  # reduced profile: step counts are divided by this
DATA_SEED = 20220106  # fixes the train/validation split of every dataset
ADAM_BETAS = (0.9, 0.98)
MLP_RATIO = 4  # width of the feed-forward layer relative to DIM_MODEL
NUM_EVALS = 150 if FULL else 15  # evaluations of train/validation metrics per training run
EVAL_CHUNK = 8192  # examples per forward pass during evaluation
TARGET_ACC = 0.99  # threshold for step_val_acc_99
LOSS_CAP = 50.0  # losses of diverged runs are reported as this value

STEPS = NUM_STEPS if FULL else max(1, NUM_STEPS // REDUCED_STEP_DIVISOR)
WARMUP = WARMUP_STEPS if FULL else max(0, WARMUP_STEPS // REDUCED_STEP_DIVISOR)

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
if DEVICE.type == "cpu":
    # The reduced models are too small to share out: on two busy cores one thread ran the
    # reduced protocol 20-35% faster than two, and leaves the other core to a second run.
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)) if FULL else 1)


# ---------------------------------------------------------------------------
# Data: the complete operation table, as (a, b, c) triples of element indices
# ---------------------------------------------------------------------------
def modular_table(op, p):
    rows = []
    for a in range(p):
        for b in range(p):
            if op == "x_plus_y":
                rows.append((a, b, (a + b) % p))
            elif op == "x_minus_y":
                rows.append((a, b, (a - b) % p))
            elif op == "x_div_y":
                if b == 0:
                    continue
                rows.append((a, b, (a * pow(b, p - 2, p)) % p))  # Fermat inverse
            else:
                raise ValueError(op)
    return rows, p


def permutation_table(k):
    perms = list(itertools.permutations(range(k)))
    index = {q: i for i, q in enumerate(perms)}
    rows = []
    for i, s in enumerate(perms):
        for j, t in enumerate(perms):
            composed = tuple(s[t[m]] for m in range(k))  # (s . t)(m) = s(t(m))
            rows.append((i, j, index[composed]))
    return rows, len(perms)


def load_dataset(name):
    """Returns (train_x, train_y, val_x, val_y, n_elements); x rows are [a, OP, b, EQ]."""
    if name == "permutation":
        rows, n = permutation_table(PERM_ITEMS)
    else:
        rows, n = modular_table(name, PRIME)
    table = np.asarray(rows, dtype=np.int64)
    op_tok, eq_tok = n, n + 1
    x = np.stack([table[:, 0], np.full(len(table), op_tok), table[:, 1], np.full(len(table), eq_tok)], axis=1)
    y = table[:, 2]
    rng = np.random.default_rng([DATA_SEED, DATASETS.index(name)])
    perm = rng.permutation(len(table))
    n_train = int(round(len(table) * float(TRAIN_FRACTION)))
    n_train = min(max(n_train, 1), len(table) - 1)
    tr, va = perm[:n_train], perm[n_train:]
    as_t = lambda a: torch.as_tensor(a, dtype=torch.long, device=DEVICE)  # noqa: E731
    return as_t(x[tr]), as_t(y[tr]), as_t(x[va]), as_t(y[va]), n


# ---------------------------------------------------------------------------
# Model: pre-LayerNorm decoder-only transformer with causal self-attention
# ---------------------------------------------------------------------------
class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.ln_attn = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, MLP_RATIO * dim), nn.GELU(), nn.Linear(MLP_RATIO * dim, dim))

    def forward(self, h, causal_mask, last_only=False):
        z = self.ln_attn(h)
        if last_only:
            # Only the final position feeds the output head, so the last block
            # computes its query, attention output and MLP for that position
            # alone (it may attend to every position; no mask is needed).
            # Mathematically identical to the full block, about 30% cheaper.
            h = h[:, -1:] + self.attn(z[:, -1:], z, z, need_weights=False)[0]
        else:
            h = h + self.attn(z, z, z, attn_mask=causal_mask, need_weights=False)[0]
        return h + self.mlp(self.ln_mlp(h))


class Decoder(nn.Module):
    def __init__(self, vocab, n_out, dim, heads, layers, seq_len=4):
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(seq_len, dim)
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(layers)])
        self.ln_out = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_out)
        # True above the diagonal = position may not attend to later tokens
        self.register_buffer("mask", torch.triu(torch.ones(seq_len, seq_len, dtype=torch.bool), diagonal=1))

    def forward(self, x):
        pos = torch.arange(x.shape[1], device=x.device)
        h = self.tok(x) + self.pos(pos)[None]
        for i, block in enumerate(self.blocks):
            h = block(h, self.mask, last_only=i == len(self.blocks) - 1)
        return self.head(self.ln_out(h[:, -1]))  # the answer is read at the "=" position


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------
@torch.no_grad()
def evaluate(model, x, y):
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, len(x), EVAL_CHUNK):
        logits = model(x[i:i + EVAL_CHUNK]).float()
        loss_sum += F.cross_entropy(logits, y[i:i + EVAL_CHUNK], reduction="sum").item()
        correct += (logits.argmax(dim=1) == y[i:i + EVAL_CHUNK]).sum().item()
    model.train()
    loss = loss_sum / len(x)
    if not math.isfinite(loss):
        loss = LOSS_CAP
    return min(loss, LOSS_CAP), correct / len(x)


def eval_steps(total):
    """Sorted unique steps (1..total) at which metrics are recorded, always including the last."""
    pts = np.unique(np.round(np.linspace(0, total, NUM_EVALS + 1)[1:]).astype(int))
    return [int(s) for s in pts if s >= 1]


def train_one(data, seed):
    x_tr, y_tr, x_va, y_va, n = data
    torch.manual_seed(seed)
    np.random.seed(seed)
    if DEVICE.type == "cuda":
        torch.cuda.manual_seed_all(seed)
    model = Decoder(n + 2, n, int(DIM_MODEL), int(NUM_HEADS), int(NUM_LAYERS)).to(DEVICE)
    opt = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, betas=ADAM_BETAS, weight_decay=WEIGHT_DECAY)
    warm = max(1, int(WARMUP))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm))
    gen = torch.Generator(device="cpu").manual_seed(10_000 + seed)

    n_train = len(x_tr)
    batch = max(1, min(int(BATCH_SIZE), n_train))
    checkpoints = set(eval_steps(STEPS))
    curves = {k: [] for k in ("step", "train_loss", "train_acc", "val_loss", "val_acc")}
    order, cursor = torch.randperm(n_train, generator=gen).to(DEVICE), 0
    step_99 = None
    diverged = False
    t0 = time.perf_counter()
    for step in range(1, STEPS + 1):
        if cursor + batch > n_train:  # reshuffle: one epoch = a pass over the training set
            order, cursor = torch.randperm(n_train, generator=gen).to(DEVICE), 0
        idx = order[cursor:cursor + batch]
        cursor += batch
        loss = F.cross_entropy(model(x_tr[idx]), y_tr[idx])
        if not torch.isfinite(loss):
            diverged = True
        else:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if step in checkpoints or diverged:
            tl, ta = evaluate(model, x_tr, y_tr)
            vl, va = evaluate(model, x_va, y_va)
            for k, v in zip(curves, (step, tl, ta, vl, va)):
                curves[k].append(v)
            if step_99 is None and va >= TARGET_ACC:
                step_99 = step
        if diverged:
            warnings.warn(f"seed {seed}: non-finite training loss at step {step}; stopping this run")
            break
    train_time = time.perf_counter() - t0
    if diverged:  # pad the curves so every seed has the same length
        last = {k: curves[k][-1] for k in curves}
        for s in sorted(checkpoints):
            if s > curves["step"][-1]:
                curves["step"].append(s)
                for k in ("train_loss", "train_acc", "val_loss", "val_acc"):
                    curves[k].append(last[k])
    return {
        "curves": curves,
        "final_train_loss": curves["train_loss"][-1],
        "final_val_loss": curves["val_loss"][-1],
        "final_train_acc": curves["train_acc"][-1],
        "final_val_acc": curves["val_acc"][-1],
        "step_val_acc_99": float(step_99 if step_99 is not None else STEPS),
        "train_time_s": train_time,
        "diverged": diverged,
    }


def finite(v, name):
    v = float(v)
    if math.isfinite(v):
        return v
    warnings.warn(f"{name} is not finite ({v}); writing {LOSS_CAP} instead")
    return LOSS_CAP if v > 0 or math.isnan(v) else -LOSS_CAP


def mean_stderr(values):
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return float(v.mean()), 0.0
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v)))


def main():
    parser = argparse.ArgumentParser(description="grokking on binary-operation tables")
    parser.add_argument("--out_dir", type=str, default="run_0")
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    print(f"profile={PROFILE} device={DEVICE} p={PRIME} S_{PERM_ITEMS} seeds={len(SEEDS)} steps={STEPS} warmup={WARMUP}")

    metrics = ("final_train_loss", "final_val_loss", "final_train_acc", "final_val_acc", "step_val_acc_99", "train_time_s")
    final_info, all_results = {}, {}
    for name in DATASETS:
        data = load_dataset(name)
        runs = [train_one(data, seed) for seed in SEEDS]
        means, stderrs = {}, {}
        for m in metrics:
            mu, se = mean_stderr([r[m] for r in runs])
            means[m], stderrs[m] = finite(mu, f"{name}.{m}"), finite(se, f"{name}.{m} stderr")
        final_info[name] = {"means": means, "stderrs": stderrs}

        curves = {k: np.asarray([r["curves"][k] for r in runs], dtype=np.float64) for k in runs[0]["curves"]}
        n_seeds = len(runs)
        entry = {"step": curves["step"][0].astype(int).tolist(), "n_train": int(len(data[0])), "n_val": int(len(data[2]))}
        for k in ("train_loss", "train_acc", "val_loss", "val_acc"):
            entry[k] = np.nan_to_num(curves[k].mean(axis=0), nan=LOSS_CAP).tolist()
            se = curves[k].std(axis=0, ddof=1) / np.sqrt(n_seeds) if n_seeds > 1 else np.zeros(curves[k].shape[1])
            entry[k + "_stderr"] = np.nan_to_num(se).tolist()
        entry["per_seed_step_val_acc_99"] = [float(r["step_val_acc_99"]) for r in runs]
        entry["num_steps"] = int(STEPS)
        all_results[name] = entry

        n_div = sum(r["diverged"] for r in runs)
        print(
            f"{name:12s} n_train={len(data[0]):5d} train_acc={means['final_train_acc']:.3f} "
            f"val_acc={means['final_val_acc']:.3f}±{stderrs['final_val_acc']:.3f} "
            f"val_loss={means['final_val_loss']:.3f} step_99={means['step_val_acc_99']:.0f} "
            f"time/seed={means['train_time_s']:.1f}s"
            + (f"  WARNING: {n_div}/{n_seeds} seeds diverged" if n_div else ""),
            flush=True,
        )

    with open(os.path.join(args.out_dir, "final_info.json"), "w") as f:
        json.dump(final_info, f, indent=2, allow_nan=False)
    np.save(os.path.join(args.out_dir, "all_results.npy"), all_results, allow_pickle=True)


if __name__ == "__main__":
    main()
