"""Draws prompts with a weights file or a training checkpoint, exactly as the engine samples
(seeded Swift noise, the shifted schedule, Euler steps), into one PNG row per prompt.

    python training/sample.py --weights models/scenes-v3.safetensors --size 128 --steps 20 \
        --out /tmp/samples.png "a large red circle in the top left on a white background"
"""

from __future__ import annotations

import argparse
import os
import pickle
import struct
import sys
import zlib

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model as M  # noqa: E402


def write_png(path: str, rgb: np.ndarray) -> None:
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("prompts", nargs="+", help="prompts to draw")
    ap.add_argument("--weights", help="safetensors weights")
    ap.add_argument("--checkpoint", help="a training checkpoint (runs/NAME/checkpoint.pkl); its EMA weights")
    ap.add_argument("--size", type=int, default=128, help="square image side")
    ap.add_argument("--steps", type=int, default=20, help="sampling steps")
    ap.add_argument("--seeds", default="1", help="comma-separated seeds (one column each)")
    ap.add_argument("--out", required=True, help="PNG path")
    args = ap.parse_args()
    if args.checkpoint:
        with open(args.checkpoint, "rb") as f:
            st = pickle.load(f)
        cfg, params = M.Config.from_json(st["config"]), st["ema"]
    else:
        cfg, params = M.load_safetensors(args.weights)
    params = {k: jax.numpy.asarray(v) for k, v in params.items()}
    s = args.size
    rows = []
    for prompt in args.prompts:
        row = []
        for seed in map(int, args.seeds.split(",")):
            latent = M.sample(params, cfg, prompt, s, s, args.steps, seed)
            row.append(M.to_bytes(M.unpatchify(latent, cfg.patchSize, s, s)))
        rows.append(np.concatenate(row, axis=1))
    write_png(args.out, np.concatenate(rows, axis=0))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
