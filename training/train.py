"""Trains the served text-to-image model on scenes rendered by `tetriserve dataset` and exports
its weights for the Swift engine.

Flow matching with x-prediction: x_t = (1 - t) x0 + t eps (t = 1 is noise), the network predicts
the clean image x0 in patch space, and the loss is the velocity error that prediction implies,
|(x_t - x0_hat)/t - (eps - x0)|^2 = |x0 - x0_hat|^2 / t^2, with t clamped in the division (at
0.05, and from `--high-t-from` on at `--t-clamp`). t is logit-normal (mean 0.5, sd 1), matching
the sampler's shifted schedule; from `--high-t-from` on a share of each batch is drawn from
[0.9, 1], where only the prompt can tell the model what to draw. AdamW with linear warm-up and
cosine decay; an exponential moving average of the weights is what gets exported.

Each step draws one resolution class (batches of one size), so the model sees every class; RoPE
uses canvas positions, so a place on the canvas has the same angle at every size.

Example (the shipped model; see docs/model.md):

    python training/train.py --data 64=training/data/d64,128=training/data/d128 --steps 2000 \
        --out models/scenes-v3.safetensors

(training/README.md has the exact command of the shipped weights.)
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import pickle
import sys
import threading
import queue
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model as M  # noqa: E402


class Dataset:
    """One directory written by `tetriserve dataset` (images.u8, prompts.txt, meta.json)."""

    def __init__(self, path: str, cfg: M.Config):
        with open(os.path.join(path, "meta.json")) as f:
            self.meta = json.load(f)
        self.count, self.width, self.height = self.meta["count"], self.meta["width"], self.meta["height"]
        self.images = np.memmap(
            os.path.join(path, "images.u8"), dtype=np.uint8, mode="r", shape=(self.count, self.height, self.width, 3)
        )
        with open(os.path.join(path, "prompts.txt"), encoding="utf-8") as f:
            prompts = f.read().split("\n")[: self.count]
        if len(prompts) != self.count:
            raise SystemExit(f"{path}/prompts.txt has {len(prompts)} lines, meta.json says count {self.count}")
        self.ids, self.mask = M.batch_tokens(cfg, prompts)

    def batch(self, rng: np.random.Generator, size: int, patch: int):
        idx = np.sort(rng.choice(self.count, size, replace=False))
        pixels = self.images[idx].astype(np.float32) / np.float32(127.5) - np.float32(1)
        return self.ids[idx], self.mask[idx], M.patchify(pixels, patch)


class RandomData:
    """Random arrays of the right shapes, for timing before a dataset exists."""

    def __init__(self, size: int, cfg: M.Config):
        self.width = self.height = size
        self.cfg = cfg

    def batch(self, rng, size, patch):
        n = (self.width // patch) ** 2
        ids = rng.integers(0, self.cfg.vocab_size, (size, self.cfg.maxTextTokens)).astype(np.int32)
        mask = np.ones((size, self.cfg.maxTextTokens), bool)
        return ids, mask, rng.uniform(-1, 1, (size, n, self.cfg.patch_dim)).astype(np.float32)


def write_svg(path: str, rows: list[dict]) -> None:
    """The loss curve (EMA of the training loss, log scale) as a small standalone SVG."""
    if not rows:
        return
    w, h, pad = 640, 360, 50
    steps = [r["step"] for r in rows]
    losses = [max(r["loss_ema"], 1e-6) for r in rows]
    lo, hi = math.log10(min(losses)), math.log10(max(losses))
    if hi - lo < 1e-3:
        hi = lo + 1
    lo, hi = math.floor(lo * 2) / 2, math.ceil(hi * 2) / 2
    smax = max(steps[-1], 1)

    def xy(s, l):
        return pad + (w - 2 * pad) * s / smax, h - pad - (h - 2 * pad) * (math.log10(l) - lo) / (hi - lo)

    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(s, l) for s, l in zip(steps, losses)))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>']
    e = lo
    while e <= hi + 1e-9:
        _, y = xy(0, 10 ** e)
        out.append(f'<line x1="{pad}" x2="{w - pad}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{pad - 6}" y="{y + 4:.1f}" text-anchor="end">{10 ** e:.3g}</text>')
        e += 0.5
    for i in range(6):
        s = smax * i / 5
        x, _ = xy(s, 10 ** lo)
        out.append(f'<text x="{x:.1f}" y="{h - pad + 18}" text-anchor="middle">{int(s)}</text>')
    out.append(f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{pts}"/>')
    out.append(f'<text x="{w / 2}" y="{h - 10}" text-anchor="middle">step</text>')
    out.append(f'<text x="{w / 2}" y="20" text-anchor="middle">training loss (velocity error of the x-prediction, EMA)</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="", help="SIZE=DIR list of `tetriserve dataset` outputs, e.g. 64=d64,128=d128")
    ap.add_argument("--random-data", default="", help="sizes to train on random arrays (timing only), e.g. 64,128")
    ap.add_argument("--mix", default="64:3,128:4,256:1", help="SIZE:WEIGHT share of steps per resolution class")
    ap.add_argument("--batch", default="64:64,128:32,256:8,512:2", help="SIZE:BATCH per resolution class")
    ap.add_argument("--steps", type=int, default=2000, help="optimizer steps")
    ap.add_argument("--time-limit", type=float, default=0, help="minutes of training: the cosine decay follows the larger of the step and time fractions, and training stops (and exports) when this time is spent (0: steps only)")
    ap.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    ap.add_argument("--warmup", type=int, default=100, help="linear warm-up steps")
    ap.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay")
    ap.add_argument("--ema", type=float, default=0.995, help="decay of the exported weight average")
    ap.add_argument("--hidden", type=int, default=256, help="transformer width")
    ap.add_argument("--heads", type=int, default=4, help="attention heads")
    ap.add_argument("--double", type=int, default=2, help="double-stream blocks")
    ap.add_argument("--single", type=int, default=2, help="single-stream blocks")
    ap.add_argument("--text-hidden", type=int, default=128, help="text encoder width")
    ap.add_argument("--text-heads", type=int, default=2, help="text encoder heads")
    ap.add_argument("--text-layers", type=int, default=1, help="text encoder layers")
    ap.add_argument("--position-frequencies", type=int, default=0, help="canvas-position features per axis and function added to the image tokens (0: none, RoPE only; scenes-v2 and scenes-v3 use 8)")
    ap.add_argument("--text-positions", default="learned", choices=["learned", "rope"], help="text token positions: a learned table per place (`text.position`) or 1D RoPE in the text attention, which is relative, so a phrase means the same wherever it stands in the prompt (scenes-v4)")
    ap.add_argument("--text-tokens", type=int, default=24, help="maxTextTokens (start token included)")
    ap.add_argument("--high-t-from", type=int, default=0, help="step from which --high-t-share and --t-clamp apply")
    ap.add_argument("--high-t-share", type=float, default=0.2, help="share of each batch with t uniform in [--high-t-min, 1]")
    ap.add_argument("--high-t-min", type=float, default=0.9, help="lower end of the high-t range: above it the noisy image shows little of the layout, so the prompt must decide it")
    ap.add_argument("--t-clamp", type=float, default=0.2, help="smallest t in the loss weight 1/t^2 (0.05 before --high-t-from)")
    ap.add_argument("--seed", type=int, default=0, help="seed of initialisation, batches and noise")
    ap.add_argument("--name", default="", help="model name in the config (default: the output's base name)")
    ap.add_argument("--out", default="models/scenes-v3.safetensors", help="exported weights")
    ap.add_argument("--run-dir", default="", help="loss CSV/SVG and checkpoints (default: training/runs/NAME)")
    ap.add_argument("--checkpoint-every", type=int, default=250, help="steps between checkpoints")
    ap.add_argument("--log-every", type=int, default=25, help="steps between progress lines")
    ap.add_argument("--init", default="", help="start from these weights (safetensors) with a fresh optimizer and schedule")
    ap.add_argument("--added-init", type=float, default=0.0, help="with --init: scale of the random initialisation of weights the file lacks (0: zeros)")
    ap.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoint")
    args = ap.parse_args()

    name = args.name or os.path.splitext(os.path.basename(args.out))[0]
    run_dir = args.run_dir or os.path.join(os.path.dirname(os.path.abspath(__file__)), "runs", name)
    os.makedirs(run_dir, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", os.path.join(run_dir, "xla-cache"))

    data_dirs = dict(kv.split("=") for kv in args.data.split(",") if kv)
    vocabulary = []
    for d in data_dirs.values():
        with open(os.path.join(d, "meta.json")) as f:
            v = json.load(f)["vocabulary"]
        if vocabulary and v != vocabulary:
            raise SystemExit(f"{d}: vocabulary differs from the other datasets'")
        vocabulary = v
    cfg = M.Config(
        name=name, hidden=args.hidden, heads=args.heads, doubleBlocks=args.double, singleBlocks=args.single,
        patchSize=16, textHidden=args.text_hidden, textHeads=args.text_heads, textLayers=args.text_layers,
        maxTextTokens=args.text_tokens, tokenizer="words", vocabulary=vocabulary or [f"w{i}" for i in range(60)],
        prediction="x", ropePositions="canvas", ropeCanvas=16.0,
        positionFrequencies=args.position_frequencies, textPositions=args.text_positions,
    )
    sources = {int(s): Dataset(d, cfg) for s, d in data_dirs.items()}
    for s in (x for x in args.random_data.split(",") if x):
        sources[int(s)] = RandomData(int(s), cfg)
    if not sources:
        raise SystemExit("give --data SIZE=DIR,... (or --random-data SIZES for timing)")
    for s, src in sources.items():
        if src.width != s or src.height != s:
            raise SystemExit(f"dataset for {s} has size {src.width}x{src.height}")
    mix = {int(k): float(v) for k, v in (kv.split(":") for kv in args.mix.split(","))}
    mix = {k: v for k, v in mix.items() if k in sources and v > 0}
    batch = {int(k): int(v) for k, v in (kv.split(":") for kv in args.batch.split(","))}
    sizes = sorted(mix)
    probs = np.array([mix[s] for s in sizes]) / sum(mix.values())

    nparams = sum(int(np.prod(s)) for _, s in cfg.parameter_shapes())
    print(f"model {name}: {nparams:,} parameters ({nparams * 4 / 1e6:.1f} MB F32); classes {sizes} "
          f"mix {dict(zip(sizes, probs.round(3)))} batch {[batch[s] for s in sizes]}", flush=True)

    def learning_rate(step: int, elapsed: float) -> float:
        """Linear warm-up over `--warmup` steps, then cosine decay to 2% over the run's progress:
        the larger of the step fraction and the fraction of `--time-limit` used, so a slower
        machine ends the same decay in fewer steps."""
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        p = (step - args.warmup) / max(1, args.steps - args.warmup)
        if args.time_limit:
            p = max(p, elapsed / (args.time_limit * 60))
        p = min(p, 1.0)
        return args.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * p)))

    opt = optax.chain(
        optax.clip_by_global_norm(1.0), optax.scale_by_adam(b1=0.9, b2=0.99),
        optax.add_decayed_weights(args.weight_decay))

    ropes = {}
    for s in sizes:
        c, sn = M.rope_table(cfg, s // 16, s // 16)
        ropes[s] = (jnp.asarray(c), jnp.asarray(sn), jnp.asarray(M.position_features(cfg, s // 16, s // 16)))

    def draw_times(step: int, b: int) -> np.ndarray:
        """Logit-normal t (mean 0.5, sd 1); from `--high-t-from` on, a `--high-t-share` of each
        batch is uniform in [--high-t-min, 1], where the prompt alone decides the layout."""
        t = 1 / (1 + np.exp(-(0.5 + t_rng.standard_normal(b))))
        if step >= args.high_t_from:
            high = t_rng.random(b) < args.high_t_share
            t = np.where(high, t_rng.uniform(args.high_t_min, 1.0, b), t)
        return t.astype(np.float32)

    def loss_fn(params, ids, mask, x0, key, cos, sin, pos, t, clamp):
        eps = jax.random.normal(key, x0.shape)
        xt = (1 - t)[:, None, None] * x0 + t[:, None, None] * eps
        pred = M.forward(params, cfg, ids, mask, xt, t, cos, sin, pos)
        err = ((pred - x0) ** 2).mean(axis=(1, 2))
        return (err / jnp.maximum(t, clamp) ** 2).mean()

    @jax.jit
    def train_step(params, ema, opt_state, ids, mask, x0, key, cos, sin, pos, lr, t, clamp):
        loss, grads = jax.value_and_grad(loss_fn)(params, ids, mask, x0, key, cos, sin, pos, t, clamp)
        updates, opt_state = opt.update(grads, opt_state, params)
        updates = jax.tree.map(lambda u: -lr * u, updates)
        params = optax.apply_updates(params, updates)
        ema = jax.tree.map(lambda e, p: args.ema * e + (1 - args.ema) * p, ema, params)
        return params, ema, opt_state, loss

    ckpt = os.path.join(run_dir, "checkpoint.pkl")
    curve_path = os.path.join(run_dir, "loss.csv")
    if args.resume and os.path.exists(ckpt):
        with open(ckpt, "rb") as f:
            st = pickle.load(f)
        params, ema, opt_state = st["params"], st["ema"], st["opt_state"]
        start, rows, elapsed0 = st["step"], st["rows"], st["elapsed"]
        rng = st["rng"]
        print(f"resumed at step {start}", flush=True)
    else:
        params = M.init_params(cfg, jax.random.PRNGKey(args.seed))
        if args.init:
            init_cfg, init_params = M.load_safetensors(args.init)
            # A file without the position projection (an older model) starts it at zero, so the
            # network begins as exactly that model, or (--added-init) with small random weights:
            # at zero the layer and the weights that would read its output sit at a saddle (the
            # gradient of each is zero while the other is), and the position stays unused.
            shapes = dict(cfg.parameter_shapes())
            # A file with learned text positions continues as a RoPE text encoder without them.
            dropped = ["text.position"] if "text.position" in init_params and "text.position" not in shapes else []
            for k in dropped:
                del init_params[k]
            added = [k for k in shapes if k not in init_params]
            if any(not k.startswith("pos_in.") for k in added) or any(
                    k not in shapes or tuple(v.shape) != tuple(shapes[k]) for k, v in init_params.items()):
                raise SystemExit(f"--init {args.init} has other tensor shapes than this configuration")
            def added_init(k):
                if k.endswith(".weight") and args.added_init > 0:
                    return params[k] * args.added_init  # N(0, added_init^2 / fan_in)
                return jnp.zeros(shapes[k], jnp.float32)
            params = {k: jnp.asarray(init_params[k]) if k in init_params else added_init(k) for k in params}
            print(f"initialised from {args.init}" + (f" ({', '.join(added)} new, scale {args.added_init})" if added else "")
                  + (f" ({', '.join(dropped)} dropped)" if dropped else ""), flush=True)
        ema = jax.tree.map(lambda p: p, params)
        opt_state = opt.init(params)
        start, rows, elapsed0 = 0, [], 0.0
        rng = np.random.default_rng(args.seed)

    def save_checkpoint(step, elapsed):
        with open(ckpt + ".tmp", "wb") as f:
            pickle.dump({"params": jax.device_get(params), "ema": jax.device_get(ema),
                         "opt_state": jax.device_get(opt_state), "step": step, "rows": rows,
                         "elapsed": elapsed, "rng": rng, "config": cfg.to_json()}, f)
        os.replace(ckpt + ".tmp", ckpt)

    # Batches are prepared on a thread while the step runs.
    plan_rng = np.random.default_rng(rng.integers(1 << 62))
    q: queue.Queue = queue.Queue(maxsize=3)

    stop = threading.Event()

    def producer():
        for step in range(start, args.steps):
            s = sizes[plan_rng.choice(len(sizes), p=probs)]
            item = (s, sources[s].batch(plan_rng, batch[s], cfg.patchSize))
            while not stop.is_set():
                try:
                    q.put(item, timeout=1)
                    break
                except queue.Full:
                    pass

    threading.Thread(target=producer, daemon=True).start()

    key = jax.random.PRNGKey(args.seed + 1 + start)
    t_rng = np.random.default_rng(args.seed + 2 + start)
    t0 = time.time()
    loss_ema = rows[-1]["loss_ema"] if rows else None
    per_size_ema: dict[int, float] = {}
    step = start
    for step in range(start, args.steps):
        s, (ids, mask, x0) = q.get()
        key, sub = jax.random.split(key)
        cos, sin, pos = ropes[s]
        lr = learning_rate(step, elapsed0 + time.time() - t0)
        clamp = args.t_clamp if step >= args.high_t_from else 0.05
        params, ema, opt_state, loss = train_step(
            params, ema, opt_state, ids, mask, x0, sub, cos, sin, pos, jnp.float32(lr),
            draw_times(step, x0.shape[0]), jnp.float32(clamp))
        loss = float(loss)
        if not math.isfinite(loss):
            raise SystemExit(f"loss is {loss} at step {step}")
        loss_ema = loss if loss_ema is None else 0.98 * loss_ema + 0.02 * loss
        per_size_ema[s] = loss if s not in per_size_ema else 0.95 * per_size_ema[s] + 0.05 * loss
        elapsed = elapsed0 + time.time() - t0
        rows.append({"step": step + 1, "size": s, "loss": loss, "loss_ema": loss_ema,
                     "lr": lr, "elapsed_s": round(elapsed, 2)})
        done = step + 1
        if done % args.log_every == 0 or done == args.steps or done == start + 1:
            eta = (elapsed - elapsed0) / (done - start) * (args.steps - done)
            per = " ".join(f"{k}²:{v:.4f}" for k, v in sorted(per_size_ema.items()))
            print(f"step {done:5d}/{args.steps} loss {loss:.4f} ema {loss_ema:.4f} [{per}] "
                  f"lr {rows[-1]['lr']:.2e} {elapsed / 60:.1f} min, eta {eta / 60:.1f} min", flush=True)
        if done % args.checkpoint_every == 0:
            save_checkpoint(done, elapsed)
            with open(curve_path, "w", newline="") as f:
                wr = csv.DictWriter(f, fieldnames=list(rows[0]))
                wr.writeheader()
                wr.writerows(rows)
            write_svg(os.path.join(run_dir, "loss.svg"), rows)
        if args.time_limit and elapsed > args.time_limit * 60:
            print(f"time limit reached at step {done}", flush=True)
            break
    stop.set()

    elapsed = elapsed0 + time.time() - t0
    save_checkpoint(step + 1, elapsed)
    with open(curve_path, "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    write_svg(os.path.join(run_dir, "loss.svg"), rows)
    if os.path.dirname(args.out):
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
    M.save_safetensors(args.out, cfg, jax.device_get(ema))
    with open(os.path.join(run_dir, "summary.json"), "w") as f:
        json.dump({"steps": step + 1, "wall_s": round(elapsed, 1), "final_loss_ema": loss_ema,
                   "parameters": nparams, "command": " ".join(sys.argv)}, f, indent=1)
    print(f"exported {args.out} ({nparams:,} parameters) after {step + 1} steps, {elapsed / 60:.1f} min; "
          f"final loss (EMA) {loss_ema:.4f}", flush=True)


if __name__ == "__main__":
    main()
