"""nanofit: a tiny 2-layer MLP classifier on synthetic 2D datasets, numpy only.

Trains a one-hidden-layer network (hand-written forward and backward pass,
mini-batch SGD with momentum and L2 weight decay) on three deterministic toy
datasets (moons, circles, spirals) over several random seeds and writes:

  <out_dir>/final_info.json   {dataset: {"means": {...}, "stderrs": {...}}}
  <out_dir>/all_results.npy   per-dataset per-epoch curves (for plot.py)

Usage: python experiment.py --out_dir run_0
"""

# --- knobs ---
LEARNING_RATE = 0.05  # SGD step size
MOMENTUM = 0.9  # heavy-ball momentum coefficient (0 = plain SGD)
HIDDEN_UNITS = 16  # width of the single hidden layer
WEIGHT_DECAY = 0.0001  # L2 penalty coefficient on weight matrices (not biases)
EPOCHS = 50  # passes over the training set
BATCH_SIZE = 32  # mini-batch size
ACTIVATION = "tanh"  # hidden nonlinearity: "tanh" or "relu"
INIT_SCALE = 1.0  # multiplier on the 1/sqrt(fan_in) std of the weight init
# --- end knobs ---

import argparse
import json
import os
import time

import numpy as np

# Fixed experimental protocol (not tuning knobs): the data and the seeds are
# kept constant so that runs with different knobs are directly comparable.
DATASETS = ("moons", "circles", "spirals")
# SWARM_SEED moves every seed to a fresh set (a tree search re-runs chosen variants on other seeds); unset, 0.
SEED_SET = int(os.environ.get("SWARM_SEED", "0"))
SEEDS = tuple(1000 * SEED_SET + s for s in (0, 1, 2))
N_SAMPLES = 1500  # points per dataset (split evenly between the two classes)
TEST_FRACTION = 1.0 / 3.0
LABEL_NOISE = 0.05  # fraction of *training* labels flipped at random
DATA_SEED = 1234
N_CLASSES = 2
LOSS_CAP = float(-np.log(1e-12))  # per-example cross-entropy cap (diverged runs)


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------
def _two_class(x0, x1):
    x = np.concatenate([x0, x1], axis=0)
    y = np.concatenate([np.zeros(len(x0), dtype=np.int64), np.ones(len(x1), dtype=np.int64)])
    return x, y


def make_moons(n, rng, noise=0.25):
    n0 = n // 2
    n1 = n - n0
    t0 = rng.uniform(0.0, np.pi, n0)
    t1 = rng.uniform(0.0, np.pi, n1)
    upper = np.stack([np.cos(t0), np.sin(t0)], axis=1)
    lower = np.stack([1.0 - np.cos(t1), 0.5 - np.sin(t1)], axis=1)
    x, y = _two_class(upper, lower)
    x = x + rng.normal(0.0, noise, x.shape)
    # centre the data roughly at the origin
    return x - np.array([0.5, 0.25]), y


def make_circles(n, rng, noise=0.15, inner_radius=0.5):
    n0 = n // 2
    n1 = n - n0
    a0 = rng.uniform(0.0, 2.0 * np.pi, n0)
    a1 = rng.uniform(0.0, 2.0 * np.pi, n1)
    outer = np.stack([np.cos(a0), np.sin(a0)], axis=1)
    inner = inner_radius * np.stack([np.cos(a1), np.sin(a1)], axis=1)
    x, y = _two_class(outer, inner)
    return x + rng.normal(0.0, noise, x.shape), y


def make_spirals(n, rng, noise=0.06, turns=1.5):
    n0 = n // 2
    n1 = n - n0
    arms = []
    for k, m in enumerate((n0, n1)):
        # sqrt spreads the points more uniformly along the arm length
        theta = np.sqrt(rng.uniform(0.02, 1.0, m)) * turns * 2.0 * np.pi
        r = theta / (turns * 2.0 * np.pi)  # radius in (0, 1]
        phase = np.pi * k  # second arm rotated by 180 degrees
        arms.append(np.stack([r * np.cos(theta + phase), r * np.sin(theta + phase)], axis=1))
    x, y = _two_class(arms[0], arms[1])
    return x + rng.normal(0.0, noise, x.shape), y


GENERATORS = {"moons": make_moons, "circles": make_circles, "spirals": make_spirals}


def load_dataset(name):
    """Deterministic train/test split with label noise on the training labels."""
    rng = np.random.default_rng([DATA_SEED, DATASETS.index(name)])
    x, y = GENERATORS[name](N_SAMPLES, rng)
    perm = rng.permutation(len(x))
    x, y = x[perm], y[perm]
    n_test = int(round(len(x) * TEST_FRACTION))
    x_test, y_test = x[:n_test], y[:n_test]
    x_train, y_train = x[n_test:], y[n_test:].copy()
    flip = rng.random(len(y_train)) < LABEL_NOISE
    y_train[flip] = 1 - y_train[flip]
    return x_train, y_train, x_test, y_test


# ---------------------------------------------------------------------------
# Model: x -> W1,b1 -> activation -> W2,b2 -> softmax
# ---------------------------------------------------------------------------
def activation_fns(name):
    if name == "tanh":
        def f(z):
            return np.tanh(z)

        def df(z, a):
            return 1.0 - a * a
    elif name == "relu":
        def f(z):
            return np.maximum(z, 0.0)

        def df(z, a):
            return (z > 0.0).astype(z.dtype)
    else:
        raise ValueError(f"unknown ACTIVATION {name!r} (expected 'tanh' or 'relu')")
    return f, df


def init_params(rng, n_in, n_hidden, n_out, scale):
    return {
        "W1": rng.normal(0.0, scale / np.sqrt(n_in), (n_in, n_hidden)),
        "b1": np.zeros(n_hidden),
        "W2": rng.normal(0.0, scale / np.sqrt(n_hidden), (n_hidden, n_out)),
        "b2": np.zeros(n_out),
    }


def forward(params, x, act):
    z1 = x @ params["W1"] + params["b1"]
    a1 = act(z1)
    logits = a1 @ params["W2"] + params["b2"]
    return z1, a1, logits


def softmax_xent(logits, y):
    """Mean cross-entropy and softmax probabilities (numerically stable)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probs = exp / exp.sum(axis=1, keepdims=True)
    p_true = probs[np.arange(len(y)), y]
    loss = float(np.mean(-np.log(np.clip(p_true, 1e-12, 1.0))))
    return loss, probs


def backward(params, x, y, z1, a1, probs, dact, weight_decay):
    n = len(y)
    dlogits = probs.copy()
    dlogits[np.arange(n), y] -= 1.0
    dlogits /= n
    grads = {
        "W2": a1.T @ dlogits + weight_decay * params["W2"],
        "b2": dlogits.sum(axis=0),
    }
    dz1 = (dlogits @ params["W2"].T) * dact(z1, a1)
    grads["W1"] = x.T @ dz1 + weight_decay * params["W1"]
    grads["b1"] = dz1.sum(axis=0)
    return grads


def accuracy(params, x, y, act):
    logits = forward(params, x, act)[2]
    if not np.all(np.isfinite(logits)):
        logits = np.nan_to_num(logits, nan=0.0, posinf=1e300, neginf=-1e300)
    return float(np.mean(np.argmax(logits, axis=1) == y))


def params_finite(params):
    return all(np.all(np.isfinite(v)) for v in params.values())


def train_one(x_train, y_train, x_test, y_test, seed):
    """Train one model; returns per-epoch curves and final metrics."""
    act, dact = activation_fns(ACTIVATION)
    rng = np.random.default_rng(seed)
    params = init_params(rng, x_train.shape[1], int(HIDDEN_UNITS), N_CLASSES, INIT_SCALE)
    velocity = {k: np.zeros_like(v) for k, v in params.items()}
    n = len(x_train)
    batch_size = max(1, int(BATCH_SIZE))
    epochs = int(EPOCHS)

    loss_curve = np.full(epochs, LOSS_CAP)
    acc_curve = np.zeros(epochs)
    diverged = False
    t0 = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):
        for epoch in range(epochs):
            order = rng.permutation(n)
            total, seen = 0.0, 0
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                xb, yb = x_train[idx], y_train[idx]
                z1, a1, logits = forward(params, xb, act)
                loss, probs = softmax_xent(logits, yb)
                grads = backward(params, xb, yb, z1, a1, probs, dact, WEIGHT_DECAY)
                for k in params:
                    velocity[k] *= MOMENTUM
                    velocity[k] += grads[k]
                    params[k] -= LEARNING_RATE * velocity[k]
                total += loss * len(idx)
                seen += len(idx)
            if not params_finite(params):
                diverged = True
                acc_curve[epoch:] = accuracy(params, x_test, y_test, act)
                break
            loss_curve[epoch] = min(total / seen, LOSS_CAP)
            acc_curve[epoch] = accuracy(params, x_test, y_test, act)
    train_time = time.perf_counter() - t0

    if diverged:
        final_loss = LOSS_CAP
    else:
        final_loss = softmax_xent(forward(params, x_train, act)[2], y_train)[0]
    return {
        "loss_curve": loss_curve,
        "acc_curve": acc_curve,
        "test_accuracy": accuracy(params, x_test, y_test, act),
        "final_train_loss": min(final_loss, LOSS_CAP),
        "train_time_s": train_time,
        "diverged": diverged,
    }


def mean_stderr(values):
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return float(v.mean()), 0.0
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v)))


def curve_stderr(curves):
    """Per-epoch standard error across seeds (rows)."""
    if curves.shape[0] < 2:
        return np.zeros(curves.shape[1])
    return curves.std(axis=0, ddof=1) / np.sqrt(curves.shape[0])


def main():
    parser = argparse.ArgumentParser(description="nanofit: tiny MLP on toy 2D datasets")
    parser.add_argument("--out_dir", type=str, default="run_0")
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)

    metrics = ("test_accuracy", "final_train_loss", "train_time_s")
    final_info = {}
    all_results = {}
    for name in DATASETS:
        x_train, y_train, x_test, y_test = load_dataset(name)
        runs = [train_one(x_train, y_train, x_test, y_test, seed) for seed in SEEDS]
        means, stderrs = {}, {}
        for m in metrics:
            means[m], stderrs[m] = mean_stderr([r[m] for r in runs])
        final_info[name] = {"means": means, "stderrs": stderrs}

        losses = np.stack([r["loss_curve"] for r in runs])
        accs = np.stack([r["acc_curve"] for r in runs])
        # plain Python lists/floats so the pickle stays readable across numpy versions
        all_results[name] = {
            "epochs": list(range(1, losses.shape[1] + 1)),
            "train_loss": losses.mean(axis=0).tolist(),
            "train_loss_stderr": curve_stderr(losses).tolist(),
            "test_accuracy": accs.mean(axis=0).tolist(),
            "test_accuracy_stderr": curve_stderr(accs).tolist(),
            "per_seed_test_accuracy": [float(r["test_accuracy"]) for r in runs],
            "per_seed_final_train_loss": [float(r["final_train_loss"]) for r in runs],
        }
        n_div = sum(r["diverged"] for r in runs)
        print(
            f"{name:8s} test_acc={means['test_accuracy']:.4f}±{stderrs['test_accuracy']:.4f} "
            f"train_loss={means['final_train_loss']:.4f}±{stderrs['final_train_loss']:.4f} "
            f"time={means['train_time_s']:.2f}s"
            + (f"  WARNING: {n_div}/{len(runs)} seeds diverged" if n_div else "")
        )

    with open(os.path.join(args.out_dir, "final_info.json"), "w") as f:
        json.dump(final_info, f, indent=2)
    np.save(os.path.join(args.out_dir, "all_results.npy"), all_results, allow_pickle=True)


if __name__ == "__main__":
    main()
