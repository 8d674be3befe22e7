"""2d_diffusion: a denoising diffusion probabilistic model (DDPM) on 2-D point clouds.

The forward process adds Gaussian noise to a data point x_0 over NUM_TIMESTEPS
steps, q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I), with a linear or
quadratic beta schedule (Ho et al., 2020).  A small MLP eps_theta(x_t, t) is
trained to predict the added noise (mean-squared error); the coordinates and the
timestep are fed through sinusoidal embeddings first.  New points are drawn by
ancestral sampling from x_T ~ N(0, I) down to x_0.

Datasets (generated in code, no files): circle, moons, line, spiral.

Metrics per dataset (mean and standard error over seeds):
  training_time   wall-clock seconds of the training loop
  eval_loss       noise-prediction MSE on held-out real points, averaged over a
                  fixed set of (timestep, noise) draws -- same draws in every run
  inference_time  wall-clock seconds to generate the sample set
  kl_divergence   histogram estimate of KL(real || generated), in nats:
                  a KL_BINS x KL_BINS grid is laid over the bounding box of a
                  large real reference sample (widened by KL_MARGIN on every
                  side) plus one extra "outside the box" cell; P is the cell
                  frequency of KL_REF_POINTS fresh real points, Q that of the
                  generated points with KL_PSEUDOCOUNT added to every cell so Q
                  is never zero; KL = sum_c P_c log(P_c / Q_c).  Lower is better.
                  Even perfect samples score above 0 because of the finite
                  sample (about 0.015 nats for 10000 points, 0.08-0.15 for
                  1000), so values compare only within one profile.

Writes
  <out_dir>/final_info.json   {dataset: {"means": {...}, "stderrs": {...}}}
  <out_dir>/all_results.npy   loss curves and generated points (for plot.py)

Usage: python experiment.py --out_dir run_0

Profiles (environment variable SWARM_PROFILE):
  full     (default) NUM_TRAIN_STEPS steps, 3 seeds, 10000 generated points.
  reduced  CPU smoke scale: NUM_TRAIN_STEPS divided by REDUCED_STEP_DIVISOR,
           1 seed, 1000 generated and 2000 evaluation points.  Every knob keeps
           its meaning; only the protocol shrinks.
"""

# --- knobs ---
NUM_TIMESTEPS = 100  # diffusion steps T of the forward/reverse process
BETA_SCHEDULE = "linear"  # noise schedule: "linear" or "quadratic" (linear in sqrt(beta))
BETA_START = 0.0001  # beta_1, noise variance added at the first step
BETA_END = 0.02  # beta_T, noise variance added at the last step
HIDDEN_SIZE = 256  # width of the denoiser MLP
HIDDEN_LAYERS = 3  # number of residual hidden blocks in the denoiser MLP
EMBEDDING_DIM = 128  # size of each sinusoidal embedding (x coordinate, y coordinate, timestep)
INPUT_SCALE = 25.0  # coordinates are multiplied by this before their sinusoidal embedding
LEARNING_RATE = 0.001  # peak AdamW learning rate (cosine-decayed to zero over training)
NUM_TRAIN_STEPS = 10000  # optimiser steps per training run
BATCH_SIZE = 256  # training points per step
# --- end knobs ---

import argparse
import json
import math
import os
import time
import warnings

import numpy as np

# Keep idle OpenMP threads from spinning: on a busy CPU machine spinning workers
# made 2-thread torch runs several times slower than 1-thread runs. Must precede torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

PROFILE = os.environ.get("SWARM_PROFILE", "full").strip().lower()
if PROFILE not in ("full", "reduced"):
    warnings.warn(f"unknown SWARM_PROFILE {PROFILE!r}; using 'full'")
    PROFILE = "full"
FULL = PROFILE == "full"

# Fixed experimental protocol (not tuning knobs): data, evaluation draws and
# seeds are identical in every run so that runs with different knobs compare.
DATASETS = ("circle", "moons", "line", "spiral")
# SWARM_SEED moves every seed to a fresh set (a tree search re-runs chosen variants on other seeds); unset, 0.
SEED_SET = int(os.environ.get("SWARM_SEED", "0"))
SEEDS = tuple(1000 * SEED_SET + s for s in ((0, 1, 2) if FULL else (0,)))
REDUCED_STEP_DIVISOR = 50  # reduced profile: NUM_TRAIN_STEPS is divided by this
N_TRAIN_POINTS = 20000  # size of the fixed training set of each dataset
N_EVAL_POINTS = 10000 if FULL else 2000  # held-out real points for eval_loss
N_GENERATE = 10000 if FULL else 1000  # points generated per run (KL estimate, plots)
N_PLOT = 2000  # generated points kept in all_results.npy for plot.py
KL_REF_POINTS = 100000  # real reference points for the histogram P
KL_BINS = 24  # histogram cells per axis
KL_MARGIN = 0.1  # box widened by this fraction of its size on every side
KL_PSEUDOCOUNT = 0.1  # added to every generated-histogram cell
WARMUP_STEPS = 100  # linear learning-rate warm-up before the cosine decay (scaled in reduced)
GRAD_CLIP = 1.0  # gradient-norm clipping threshold
LOSS_CURVE_POINTS = 200  # training-loss curve is stored as this many window means
DATA_SEED = 2020
EVAL_SEED = 7
SAMPLE_SEED = 11
LOSS_CAP = 1e6  # non-finite losses are reported as this value

STEPS = NUM_TRAIN_STEPS if FULL else max(1, NUM_TRAIN_STEPS // REDUCED_STEP_DIVISOR)
WARMUP = WARMUP_STEPS if FULL else WARMUP_STEPS // REDUCED_STEP_DIVISOR

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
if DEVICE.type == "cpu":
    # The reduced models are too small to share out: on two busy cores one thread ran the
    # reduced protocol 20-35% faster than two, and leaves the other core to a second run.
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)) if FULL else 1)


# ---------------------------------------------------------------------------
# Data: 2-D point clouds, roughly centred at the origin with coordinates in [-2, 2]
# ---------------------------------------------------------------------------
def make_circle(n, rng):
    theta = rng.uniform(0.0, 2.0 * np.pi, n)
    pts = 1.5 * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    return pts + rng.normal(0.0, 0.03, pts.shape)


def make_moons(n, rng):
    n0 = n // 2
    t0 = rng.uniform(0.0, np.pi, n0)
    t1 = rng.uniform(0.0, np.pi, n - n0)
    upper = np.stack([np.cos(t0), np.sin(t0)], axis=1)
    lower = np.stack([1.0 - np.cos(t1), 0.5 - np.sin(t1)], axis=1)
    pts = np.concatenate([upper, lower], axis=0) + rng.normal(0.0, 0.05, (n, 2))
    pts = (pts - np.array([0.5, 0.25])) * 1.4
    return pts[rng.permutation(n)]


def make_line(n, rng):
    u = rng.uniform(-1.0, 1.0, n)
    pts = np.stack([1.8 * u, 0.9 * u], axis=1)  # a slanted segment
    return pts + rng.normal(0.0, 0.03, pts.shape)


def make_spiral(n, rng):
    turns = 2.0
    s = np.sqrt(rng.uniform(0.01, 1.0, n))  # uniform along the arc length, roughly
    theta = s * turns * 2.0 * np.pi
    r = 1.8 * s
    pts = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    return pts + rng.normal(0.0, 0.04, pts.shape)


GENERATORS = {"circle": make_circle, "moons": make_moons, "line": make_line, "spiral": make_spiral}


def sample_dataset(name, n, stream):
    """Deterministic sample: `stream` 0 = training set, 1 = evaluation set, 2 = KL reference."""
    rng = np.random.default_rng([DATA_SEED, DATASETS.index(name), stream])
    return GENERATORS[name](n, rng).astype(np.float32)


# ---------------------------------------------------------------------------
# Noise schedule
# ---------------------------------------------------------------------------
class Schedule:
    def __init__(self, T, kind, beta_start, beta_end):
        if kind == "linear":
            betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
        elif kind == "quadratic":
            betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, T, dtype=torch.float64) ** 2
        else:
            raise ValueError(f"unknown BETA_SCHEDULE {kind!r} (expected 'linear' or 'quadratic')")
        betas = betas.clamp(1e-8, 0.999)
        alphas = 1.0 - betas
        abar = torch.cumprod(alphas, dim=0)
        abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
        f = lambda v: v.float().to(DEVICE)  # noqa: E731
        self.T = T
        self.betas = f(betas)
        self.sqrt_abar = f(abar.sqrt())
        self.sqrt_one_minus_abar = f((1.0 - abar).sqrt())
        self.inv_sqrt_alpha = f(1.0 / alphas.sqrt())
        self.eps_coef = f(betas / (1.0 - abar).sqrt())  # beta_t / sqrt(1 - abar_t)
        self.post_std = f((betas * (1.0 - abar_prev) / (1.0 - abar)).sqrt())  # sqrt(beta-tilde_t)

    def add_noise(self, x0, t, noise):
        return self.sqrt_abar[t, None] * x0 + self.sqrt_one_minus_abar[t, None] * noise


# ---------------------------------------------------------------------------
# Denoiser: sinusoidal embeddings of x, y and t -> residual MLP -> predicted noise
# ---------------------------------------------------------------------------
def sinusoidal(v, dim, scale):
    half = max(1, dim // 2)
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=v.device, dtype=torch.float32) / max(1, half - 1))
    args = (scale * v.float())[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class ResidualBlock(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.linear = nn.Linear(width, width)

    def forward(self, h):
        return h + F.gelu(self.linear(self.norm(h)))


class Denoiser(nn.Module):
    def __init__(self, emb_dim, hidden, layers, input_scale):
        super().__init__()
        self.emb_dim, self.input_scale = emb_dim, input_scale
        in_dim = 3 * 2 * max(1, emb_dim // 2)
        self.inp = nn.Linear(in_dim, hidden)
        self.blocks = nn.Sequential(*[ResidualBlock(hidden) for _ in range(layers)])
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, 2))

    def forward(self, x, t):
        h = torch.cat(
            [
                sinusoidal(x[:, 0], self.emb_dim, self.input_scale),
                sinusoidal(x[:, 1], self.emb_dim, self.input_scale),
                sinusoidal(t, self.emb_dim, 1.0),
            ],
            dim=1,
        )
        return self.out(self.blocks(F.gelu(self.inp(h))))


# ---------------------------------------------------------------------------
# Training, evaluation, sampling
# ---------------------------------------------------------------------------
def sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def eval_loss(model, sched, x_eval):
    """Noise-prediction MSE with (t, noise) draws fixed by EVAL_SEED (identical in every run)."""
    g = torch.Generator(device="cpu").manual_seed(EVAL_SEED)
    t = torch.randint(0, sched.T, (len(x_eval),), generator=g).to(DEVICE)
    noise = torch.randn(x_eval.shape, generator=g).to(DEVICE)
    model.eval()
    total = 0.0
    for i in range(0, len(x_eval), 4096):
        sl = slice(i, i + 4096)
        pred = model(sched.add_noise(x_eval[sl], t[sl], noise[sl]), t[sl])
        total += F.mse_loss(pred, noise[sl], reduction="sum").item()
    model.train()
    return total / x_eval.numel()


@torch.no_grad()
def generate(model, sched, n):
    """Ancestral DDPM sampling; start noise and per-step noise fixed by SAMPLE_SEED."""
    g = torch.Generator(device="cpu").manual_seed(SAMPLE_SEED)
    model.eval()
    x = torch.randn((n, 2), generator=g).to(DEVICE)
    for t in range(sched.T - 1, -1, -1):
        tt = torch.full((n,), t, device=DEVICE, dtype=torch.long)
        eps = model(x, tt)
        x = sched.inv_sqrt_alpha[t] * (x - sched.eps_coef[t] * eps)
        if t > 0:
            x = x + sched.post_std[t] * torch.randn((n, 2), generator=g).to(DEVICE)
    model.train()
    return x


def histogram_kl(real, gen, lo, hi):
    """KL(P_real || Q_gen) between histograms on the box [lo, hi] plus an outside cell (see module doc)."""

    def counts(pts):
        inside = np.all((pts >= lo) & (pts <= hi), axis=1)
        h, _, _ = np.histogram2d(pts[inside, 0], pts[inside, 1], bins=KL_BINS, range=[[lo[0], hi[0]], [lo[1], hi[1]]])
        return np.append(h.ravel(), float((~inside).sum()))

    gen = np.where(np.isfinite(gen), gen, 1e9)  # non-finite samples land in the outside cell
    p = counts(real)
    p = p / p.sum()
    q = counts(gen) + KL_PSEUDOCOUNT
    q = q / q.sum()
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def train_one(name, x_train, x_eval, ref, box, seed):
    torch.manual_seed(seed)
    np.random.seed(seed)
    if DEVICE.type == "cuda":
        torch.cuda.manual_seed_all(seed)
    sched = Schedule(int(NUM_TIMESTEPS), BETA_SCHEDULE, BETA_START, BETA_END)
    model = Denoiser(int(EMBEDDING_DIM), int(HIDDEN_SIZE), int(HIDDEN_LAYERS), INPUT_SCALE).to(DEVICE)
    opt = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.0)

    def lr_factor(step):  # linear warm-up, then cosine decay to zero
        if step < WARMUP:
            return (step + 1) / WARMUP
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - WARMUP) / max(1, STEPS - WARMUP))))

    lr_sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    g = torch.Generator(device="cpu").manual_seed(1000 + seed)
    batch = max(1, int(BATCH_SIZE))
    losses = torch.zeros(STEPS, device=DEVICE)
    n_bad = 0
    sync()
    t0 = time.perf_counter()
    for step in range(STEPS):
        idx = torch.randint(0, len(x_train), (batch,), generator=g).to(DEVICE)
        x0 = x_train[idx]
        t = torch.randint(0, sched.T, (batch,), generator=g).to(DEVICE)
        noise = torch.randn((batch, 2), generator=g).to(DEVICE)
        loss = F.mse_loss(model(sched.add_noise(x0, t, noise), t), noise)
        opt.zero_grad(set_to_none=True)
        if torch.isfinite(loss):
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
            opt.step()
        else:
            n_bad += 1
        lr_sched.step()
        losses[step] = loss.detach()
    sync()
    training_time = time.perf_counter() - t0
    if n_bad:
        warnings.warn(f"{name} seed {seed}: {n_bad} steps had a non-finite loss and were skipped")

    ev = eval_loss(model, sched, x_eval)
    sync()
    t0 = time.perf_counter()
    samples = generate(model, sched, N_GENERATE)
    sync()
    inference_time = time.perf_counter() - t0
    samples = samples.cpu().numpy().astype(np.float64)
    kl = histogram_kl(ref, samples, *box)

    # training-loss curve as window means (keeps all_results.npy small)
    losses = torch.nan_to_num(losses, nan=LOSS_CAP, posinf=LOSS_CAP).cpu().numpy()
    windows = np.array_split(np.arange(STEPS), min(LOSS_CURVE_POINTS, STEPS))
    curve_steps = [int(w[-1]) + 1 for w in windows]
    curve = [float(losses[w].mean()) for w in windows]
    return {
        "training_time": training_time,
        "eval_loss": ev,
        "inference_time": inference_time,
        "kl_divergence": kl,
        "curve_steps": curve_steps,
        "curve": curve,
        "samples": samples,
    }


def finite(v, name):
    v = float(v)
    if math.isfinite(v):
        return v
    warnings.warn(f"{name} is not finite ({v}); writing {LOSS_CAP} instead")
    return LOSS_CAP


def mean_stderr(values):
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return float(v.mean()), 0.0
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v)))


def main():
    parser = argparse.ArgumentParser(description="DDPM on 2-D point clouds")
    parser.add_argument("--out_dir", type=str, default="run_0")
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    print(f"profile={PROFILE} device={DEVICE} steps={STEPS} seeds={len(SEEDS)} generate={N_GENERATE}", flush=True)

    metrics = ("training_time", "eval_loss", "inference_time", "kl_divergence")
    final_info, all_results = {}, {}
    for name in DATASETS:
        x_train = torch.as_tensor(sample_dataset(name, N_TRAIN_POINTS, 0), device=DEVICE)
        x_eval = torch.as_tensor(sample_dataset(name, N_EVAL_POINTS, 1), device=DEVICE)
        ref = sample_dataset(name, KL_REF_POINTS, 2).astype(np.float64)
        lo, hi = ref.min(axis=0), ref.max(axis=0)
        pad = KL_MARGIN * (hi - lo)
        box = (lo - pad, hi + pad)

        runs = [train_one(name, x_train, x_eval, ref, box, seed) for seed in SEEDS]
        means, stderrs = {}, {}
        for m in metrics:
            mu, se = mean_stderr([r[m] for r in runs])
            means[m], stderrs[m] = finite(mu, f"{name}.{m}"), finite(se, f"{name}.{m} stderr")
        final_info[name] = {"means": means, "stderrs": stderrs}

        curves = np.asarray([r["curve"] for r in runs])
        shown = runs[0]["samples"][:N_PLOT]
        all_results[name] = {
            "train_loss_steps": runs[0]["curve_steps"],
            "train_loss": curves.mean(axis=0).tolist(),
            "generated": np.nan_to_num(shown, nan=0.0, posinf=1e3, neginf=-1e3).round(5).tolist(),
            "real": sample_dataset(name, N_PLOT, 2).astype(np.float64).round(5).tolist(),
            "kl_box": [box[0].tolist(), box[1].tolist()],
            "per_seed_kl_divergence": [float(r["kl_divergence"]) for r in runs],
        }
        print(
            f"{name:7s} eval_loss={means['eval_loss']:.4f}±{stderrs['eval_loss']:.4f} "
            f"kl={means['kl_divergence']:.4f}±{stderrs['kl_divergence']:.4f} "
            f"train={means['training_time']:.1f}s sample={means['inference_time']:.2f}s",
            flush=True,
        )

    with open(os.path.join(args.out_dir, "final_info.json"), "w") as f:
        json.dump(final_info, f, indent=2, allow_nan=False)
    np.save(os.path.join(args.out_dir, "all_results.npy"), all_results, allow_pickle=True)


if __name__ == "__main__":
    main()
