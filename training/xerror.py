"""The clean-image error of a weights file's x-prediction at fixed noise levels, on training
scenes with their true prompts (teacher-forced: one forward pass from x_t = (1 - t) x0 + t eps).

    training/.venv/bin/python training/xerror.py models/scenes-v4.safetensors

For each size and t prints the mean squared error of x_hat against x0 (pixels in [-1, 1]), of
the rescaled noisy input x_t / (1 - t) (what a network that only passed its input through would
score) and of x_t itself. Where the model is above the other two, its last sampling step makes
the image worse than the noisy latent it was given.
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model as M  # noqa: E402
import train as T  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights", help="safetensors file")
    ap.add_argument("--data", default="128=training/data/d128,256=training/data/d256", help="SIZE=DIR list of `tetriserve dataset` outputs")
    ap.add_argument("--count", type=int, default=8, help="scenes per size")
    ap.add_argument("--times", default="0.02,0.05,0.1,0.2,0.4,0.7,0.95", help="noise levels t")
    args = ap.parse_args()
    cfg, params = M.load_safetensors(args.weights)
    params = {k: jnp.asarray(v) for k, v in params.items()}
    print("size  t      x_hat     x_t/(1-t)  x_t")
    for kv in args.data.split(","):
        size, d = kv.split("=")
        size = int(size)
        ds = T.Dataset(d, cfg)
        ids, mask, x0 = ds.batch(np.random.default_rng(0), args.count, cfg.patchSize)
        g = size // cfg.patchSize
        cos, sin = M.rope_table(cfg, g, g)
        pos = M.position_features(cfg, g, g)
        eps = np.asarray(jax.random.normal(jax.random.PRNGKey(1), x0.shape))
        f = jax.jit(lambda xt, t: M.forward(params, cfg, ids, mask, xt, t, cos, sin, pos))
        for t in (float(x) for x in args.times.split(",")):
            xt = (1 - t) * x0 + t * eps
            xh = np.asarray(f(xt, np.full(args.count, t, np.float32)))
            print(f"{size:4d}  {t:<5}  {((xh - x0) ** 2).mean():.5f}   {((xt / (1 - t) - x0) ** 2).mean():.5f}    "
                  f"{((xt - x0) ** 2).mean():.5f}", flush=True)


if __name__ == "__main__":
    main()
