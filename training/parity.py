"""Writes a parity fixture for the Swift engine: one forward pass and one short sampling run of a
weights file, computed by the JAX model (training/model.py).

    python training/parity.py --weights models/scenes-v3.safetensors --name scenes-v3

writes Tests/DiTEngineTests/Fixtures/<name>.json with, for each forward case, the expected output
of one engine step from the seeded noise at time t to time 0 (`<name>-forward-K.f32`, little-endian
F32: the velocity step x - t·v, or the clean image for x-prediction) and, for the sampling case,
the final RGB bytes (`<name>-sample.u8`). `--random CONFIG_JSON` instead writes random weights of
that configuration next to the fixture (for a small fixture that does not need trained weights).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model as M  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "Tests", "DiTEngineTests", "Fixtures")


def forward_case(cfg, params, prompt, width, height, seed, t):
    p = cfg.patchSize
    rows, cols = height // p, width // p
    n = rows * cols
    ids, mask = M.batch_tokens(cfg, [prompt])
    k = int(mask.sum())
    cos, sin = M.rope_table(cfg, rows, cols)
    pos = M.position_features(cfg, rows, cols)
    x = M.swift_noise(seed, n * cfg.patch_dim).reshape(1, n, cfg.patch_dim)
    out = M.forward(params, cfg, ids[:, :k], mask[:, :k], x, np.array([t], np.float32), cos, sin, pos)
    return M.euler_step(cfg, np.asarray(out), x, np.float32(t), np.float32(0))[0].astype("<f4")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True, help="safetensors file (repository-relative path stored in the fixture)")
    ap.add_argument("--name", required=True, help="fixture base name")
    ap.add_argument("--random", help="write random weights of this config JSON to --weights first")
    ap.add_argument("--seed", type=int, default=7, help="seed of the random weights")
    ap.add_argument("--sizes", default="64x64,128x64", help="forward cases, WxH list")
    ap.add_argument("--sample-size", default="64x64", help="size of the sampling run")
    ap.add_argument("--sample-steps", type=int, default=4, help="steps of the sampling run")
    ap.add_argument("--prompt", default="a large red circle in the top left on a white background")
    args = ap.parse_args()

    jax.config.update("jax_default_matmul_precision", "highest")
    wpath = os.path.join(ROOT, args.weights)
    if args.random:
        cfg = M.Config(**json.loads(args.random))
        M.save_safetensors(wpath, cfg, M.random_params(cfg, args.seed), legacy=cfg.tokenizer == "bytes")
    cfg, params = M.load_safetensors(wpath)
    params = {k: jax.numpy.asarray(v) for k, v in params.items()}
    os.makedirs(FIXTURES, exist_ok=True)
    prompts = [args.prompt, "blue square, bottom right, black background", "a small yellow triangle at the center"]
    times = [0.9, 0.5, 0.2]
    cases = []
    for i, size in enumerate(args.sizes.split(",")):
        w, h = map(int, size.split("x"))
        out = forward_case(cfg, params, prompts[i % 3], w, h, 100 + i, times[i % 3])
        fname = f"{args.name}-forward-{i}.f32"
        out.tofile(os.path.join(FIXTURES, fname))
        cases.append({"prompt": prompts[i % 3], "width": w, "height": h, "seed": 100 + i,
                      "t": float(np.float32(times[i % 3])), "expected": fname})
    w, h = map(int, args.sample_size.split("x"))
    latent = M.sample(params, cfg, args.prompt, w, h, args.sample_steps, 11)
    img = M.to_bytes(M.unpatchify(latent, cfg.patchSize, h, w))
    sname = f"{args.name}-sample.u8"
    img.tofile(os.path.join(FIXTURES, sname))
    fixture = {
        "weights": args.weights,
        "forward": cases,
        "sample": {"prompt": args.prompt, "width": w, "height": h, "steps": args.sample_steps, "seed": 11,
                   "expected": sname},
    }
    with open(os.path.join(FIXTURES, f"{args.name}.json"), "w") as f:
        json.dump(fixture, f, indent=1)
    print(f"wrote {args.name}: {len(cases)} forward cases, sample {w}x{h} x{args.sample_steps}")


if __name__ == "__main__":
    main()
