"""A JAX mirror of the Swift engine's served model (Sources/DiTEngine/Model).

Every tensor name, shape and layout matches `ModelConfig.parameterShapes` (linear weights are
[out, in], y = x W^T + b), and every operation mirrors the Swift code: layer norms and RMS norms
with eps 1e-6, the tanh GELU, adaLN modulation x * (1 + scale) + shift, 2D RoPE on image tokens
with adjacent pairs (first half of a head's pairs rotates with the row, second with the column),
the sinusoidal embedding of t * 1000 (cosines then sines), the pooled text vector as the mean
of the text encoder output, joint attention over text then image tokens.

Batches pad the text to `maxTextTokens`; a key mask keeps padded text tokens out of every
attention and out of the pooled mean, so each row of a batch computes exactly what the Swift
engine computes for its prompt alone.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import asdict, dataclass, field

import jax
import jax.numpy as jnp
import numpy as np


@dataclass
class Config:
    """Mirrors Swift `ModelConfig` (field names are its Codable keys)."""

    name: str
    hidden: int
    heads: int
    doubleBlocks: int
    singleBlocks: int
    patchSize: int
    textHidden: int
    textHeads: int
    textLayers: int
    maxTextTokens: int
    mlpRatio: int = 4
    channels: int = 3
    timeEmbedding: int = 256
    ropeTheta: float = 10000.0
    tokenizer: str = "bytes"
    vocabulary: list = field(default_factory=list)
    prediction: str = "velocity"
    ropePositions: str = "grid"
    ropeCanvas: float = 16.0
    positionFrequencies: int = 0
    textPositions: str = "learned"

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def mlp_hidden(self) -> int:
        return self.hidden * self.mlpRatio

    @property
    def patch_dim(self) -> int:
        return self.channels * self.patchSize * self.patchSize

    @property
    def vocab_size(self) -> int:
        return 257 if self.tokenizer == "bytes" else len(self.vocabulary) + 1

    def to_json(self, legacy: bool = False) -> str:
        d = asdict(self)
        if legacy:  # the fields a Swift engine without the word tokenizer etc. decodes
            for k in ("tokenizer", "vocabulary", "prediction", "ropePositions", "ropeCanvas", "positionFrequencies",
                      "textPositions"):
                d.pop(k)
        return json.dumps(d, separators=(",", ":"))

    @staticmethod
    def from_json(text: str) -> "Config":
        return Config(**json.loads(text))

    def parameter_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        out: list[tuple[str, tuple[int, ...]]] = []

        def linear(name, i, o):
            out.append((f"{name}.weight", (o, i)))
            out.append((f"{name}.bias", (o,)))

        def norm(name, dim, bias):
            out.append((f"{name}.weight", (dim,)))
            if bias:
                out.append((f"{name}.bias", (dim,)))

        d, t, r = self.hidden, self.textHidden, self.mlpRatio
        out.append(("text.embed", (self.vocab_size, t)))
        if self.textPositions == "learned":
            out.append(("text.position", (self.maxTextTokens, t)))
        for i in range(self.textLayers):
            p = f"text.layers.{i}"
            norm(f"{p}.norm1", t, True)
            linear(f"{p}.qkv", t, 3 * t)
            linear(f"{p}.proj", t, t)
            norm(f"{p}.norm2", t, True)
            linear(f"{p}.mlp1", t, t * r)
            linear(f"{p}.mlp2", t * r, t)
        norm("text.final_norm", t, True)
        linear("img_in", self.patch_dim, d)
        if self.positionFrequencies > 0:
            linear("pos_in", 4 * self.positionFrequencies, d)
        linear("txt_in", t, d)
        linear("time_in.in", self.timeEmbedding, d)
        linear("time_in.out", d, d)
        linear("vector_in.in", t, d)
        linear("vector_in.out", d, d)
        for i in range(self.doubleBlocks):
            for s in ("img", "txt"):
                p = f"double.{i}.{s}"
                linear(f"{p}.mod", d, 6 * d)
                linear(f"{p}.qkv", d, 3 * d)
                norm(f"{p}.query_norm", self.head_dim, False)
                norm(f"{p}.key_norm", self.head_dim, False)
                linear(f"{p}.proj", d, d)
                linear(f"{p}.mlp1", d, self.mlp_hidden)
                linear(f"{p}.mlp2", self.mlp_hidden, d)
        for i in range(self.singleBlocks):
            p = f"single.{i}"
            linear(f"{p}.mod", d, 3 * d)
            linear(f"{p}.linear1", d, 3 * d + self.mlp_hidden)
            norm(f"{p}.query_norm", self.head_dim, False)
            norm(f"{p}.key_norm", self.head_dim, False)
            linear(f"{p}.linear2", d + self.mlp_hidden, d)
        linear("final.mod", d, 2 * d)
        linear("final.linear", d, self.patch_dim)
        return out


# ---------------------------------------------------------------------------------------------
# Tokenizer, noise and schedule (ports of the Swift code)


def tokenize(cfg: Config, prompt: str) -> list[int]:
    if cfg.tokenizer == "bytes":
        return ([256] + list(prompt.encode("utf-8")))[: cfg.maxTextTokens]
    index: dict[str, int] = {}
    for i, w in enumerate(cfg.vocabulary):
        index.setdefault(w, i + 1)  # the first occurrence of a word names it
    words = re.split(r"[^a-z0-9]+", prompt.lower())
    ids = [0] + [index[w] for w in words if w in index]
    return ids[: cfg.maxTextTokens]


MASK64 = (1 << 64) - 1


class SplitMix64:
    """Port of Swift `SplitMix64` (Sources/DiTEngine/Support.swift)."""

    def __init__(self, seed: int):
        self.state = seed & MASK64

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def next_gaussian(self) -> np.float32:
        u1 = float(self.next() >> 11) * (1.0 / 9007199254740992.0)
        u2 = float(self.next() >> 11) * (1.0 / 9007199254740992.0)
        return np.float32(math.sqrt(-2 * math.log(max(u1, 1e-300))) * math.cos(2 * math.pi * u2))


def swift_noise(seed: int, count: int) -> np.ndarray:
    rng = SplitMix64(seed)
    return np.array([rng.next_gaussian() for _ in range(count)], dtype=np.float32)


def schedule(steps: int, image_tokens: int) -> list[np.float32]:
    mu = 0.5 + (1.15 - 0.5) * (image_tokens - 256) / (4096 - 256)
    e = math.exp(mu)
    out = []
    for i in range(steps + 1):
        t = 1 - i / steps
        out.append(np.float32(0) if t <= 0 else np.float32(e / (e + (1 / t - 1))))
    return out


def patchify(pixels: np.ndarray, p: int) -> np.ndarray:
    """[..., H, W, C] -> [..., tokens, C*p*p] (channel-major inside a patch)."""
    *lead, h, w, c = pixels.shape
    n = len(lead)
    x = pixels.reshape(*lead, h // p, p, w // p, p, c)
    x = x.transpose(*range(n), n + 0, n + 2, n + 4, n + 1, n + 3)
    return x.reshape(*lead, (h // p) * (w // p), c * p * p)


def unpatchify(tokens: np.ndarray, p: int, h: int, w: int, c: int = 3) -> np.ndarray:
    *lead, n, _ = tokens.shape
    x = tokens.reshape(*lead, h // p, w // p, c, p, p)
    k = len(lead)
    x = x.transpose(*range(k), k + 0, k + 3, k + 1, k + 4, k + 2)
    return x.reshape(*lead, h, w, c)


def to_bytes(pixels: np.ndarray) -> np.ndarray:
    """Port of `Patches.toBytes` ([-1, 1] floats to 8-bit, round half away from zero)."""
    v = np.nan_to_num(pixels.astype(np.float32), nan=-1.0, posinf=1.0, neginf=-1.0)
    x = (np.clip(v, -1, 1) + np.float32(1)) * np.float32(127.5)
    return np.floor(x + np.float32(0.5)).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Initialisation and safetensors


def init_params(cfg: Config, key) -> dict[str, jnp.ndarray]:
    """Trainable initialisation: N(0, 1/fan_in) linears, zero biases, norms 1, small embeddings,
    zero-initialised modulation (adaLN-Zero: gates start at 0) and output layers."""
    params = {}
    shapes = cfg.parameter_shapes()
    keys = jax.random.split(key, len(shapes))
    for (name, shape), k in zip(shapes, keys):
        if name.endswith("norm.weight") or name.endswith("norm1.weight") or name.endswith("norm2.weight"):
            v = jnp.ones(shape)
        elif name.endswith(".bias"):
            v = jnp.zeros(shape)
        elif name in ("text.embed", "text.position"):
            v = 0.02 * jax.random.normal(k, shape)
        elif name.endswith("mod.weight") or name == "final.linear.weight":
            v = jnp.zeros(shape)
        else:
            v = jax.random.normal(k, shape) / math.sqrt(shape[1])
        params[name] = v.astype(jnp.float32)
    return params


def random_params(cfg: Config, seed: int) -> dict[str, np.ndarray]:
    """Non-degenerate random weights (no zeros) for parity checks."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in cfg.parameter_shapes():
        if name.endswith(".bias"):
            v = 0.02 * rng.standard_normal(shape)
        elif len(shape) == 2 and name not in ("text.embed", "text.position"):
            v = rng.standard_normal(shape) * ((0.5 if name.endswith("mod.weight") else 1) / math.sqrt(shape[1]))
        elif "norm" in name:
            v = 1 + 0.1 * rng.standard_normal(shape)
        else:
            v = rng.standard_normal(shape)
        out[name] = v.astype(np.float32)
    return out


def save_safetensors(path: str, cfg: Config, params, legacy: bool = False) -> None:
    """F32 safetensors in `parameterShapes` order; the config JSON goes under both
    `tetriserve.config` and `config` (the key older engines read)."""
    header = {}
    blobs = []
    offset = 0
    for name, shape in cfg.parameter_shapes():
        a = np.asarray(params[name], dtype="<f4")
        assert a.shape == tuple(shape), (name, a.shape, shape)
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    text = cfg.to_json(legacy)
    header["__metadata__"] = {"tetriserve.config": text, "config": text, "format": "tetriserve-mmdit"}
    h = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_safetensors(path: str) -> tuple[Config, dict[str, np.ndarray]]:
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__")
    cfg = Config.from_json(meta.get("tetriserve.config") or meta["config"])
    base = 8 + n
    params = {}
    for name, e in header.items():
        a, b = e["data_offsets"]
        params[name] = np.frombuffer(data[base + a : base + b], dtype="<f4").reshape(e["shape"]).copy()
    return cfg, params


# ---------------------------------------------------------------------------------------------
# The forward pass


def linear(params, name, x):
    return x @ params[f"{name}.weight"].T + params[f"{name}.bias"]


def layer_norm(x, weight=None, bias=None, eps=1e-6):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    y = (x - mean) / jnp.sqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def rms_norm(x, weight, eps=1e-6):
    return x / jnp.sqrt((x * x).mean(-1, keepdims=True) + eps) * weight


def gelu(x):
    return 0.5 * x * (1 + jnp.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))


def silu(x):
    return x / (1 + jnp.exp(-x))


def attention(q, k, v, key_mask):
    """q, k, v: [B, L, H, Dh]; key_mask: [B, L] (True = attend)."""
    scale = 1 / math.sqrt(q.shape[-1])
    s = jnp.einsum("bqhd,bkhd->bhqk", q * scale, k)
    s = jnp.where(key_mask[:, None, None, :], s, -1e30)
    s = s - jax.lax.stop_gradient(s.max(-1, keepdims=True))
    e = jnp.exp(s)
    o = jnp.einsum("bhqk,bkhd->bqhd", e, v)
    return o / e.sum(-1)[:, :, :, None].transpose(0, 2, 1, 3)


def rope_positions(cfg: Config, rows: int, columns: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.repeat(np.arange(rows), columns).astype(np.float64)
    c = np.tile(np.arange(columns), rows).astype(np.float64)
    if cfg.ropePositions == "canvas":
        r = (r + 0.5) * float(np.float32(cfg.ropeCanvas)) / rows
        c = (c + 0.5) * float(np.float32(cfg.ropeCanvas)) / columns
    return r, c


def rope_table(cfg: Config, rows: int, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin [tokens, headDim/2] as Swift `Ops.rope2DTable` (computed in double precision)."""
    hd = cfg.head_dim
    per_axis = hd // 4
    theta = float(np.float32(cfg.ropeTheta))
    i = np.arange(per_axis)
    freq = theta ** (-(2.0 * i) / (hd // 2))
    r, c = rope_positions(cfg, rows, columns)
    ang = np.concatenate([r[:, None] * freq[None], c[:, None] * freq[None]], axis=1)
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


def position_features(cfg: Config, rows: int, columns: int) -> np.ndarray:
    """The canvas-position features of the image tokens, [tokens, 4 * positionFrequencies], as
    Swift `ModelConfig.positionFeatures` (computed in double precision): with the token centre at
    v = (row + 0.5) / rows and u = (col + 0.5) / columns, cos(pi k v), sin(pi k v), cos(pi k u),
    sin(pi k u) for k = 1 ... positionFrequencies, each group in order of k. An empty array when
    the model has none."""
    k = cfg.positionFrequencies
    n = rows * columns
    if k <= 0:
        return np.zeros((n, 0), np.float32)
    v = (np.repeat(np.arange(rows), columns) + 0.5) / rows
    u = (np.tile(np.arange(columns), rows) + 0.5) / columns
    f = math.pi * np.arange(1, k + 1, dtype=np.float64)
    av, au = v[:, None] * f[None], u[:, None] * f[None]
    return np.concatenate([np.cos(av), np.sin(av), np.cos(au), np.sin(au)], axis=1).astype(np.float32)


def text_rope_table(cfg: Config, tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin [tokens, textHeadDim/2] of the text encoder's 1D RoPE (`textPositions: rope`), as
    Swift `Ops.rope1DTable` (double precision): token i, pair j at angle i * theta^(-2j/headDim)."""
    hd = cfg.textHidden // cfg.textHeads
    theta = float(np.float32(cfg.ropeTheta))
    freq = theta ** (-(2.0 * np.arange(hd // 2)) / hd)
    ang = np.arange(tokens, dtype=np.float64)[:, None] * freq[None]
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


def apply_rope(x, cos, sin):
    """x: [B, N, H, Dh]; rotates adjacent pairs."""
    b, n, h, d = x.shape
    xp = x.reshape(b, n, h, d // 2, 2)
    a, bb = xp[..., 0], xp[..., 1]
    c = cos[None, :, None, :]
    s = sin[None, :, None, :]
    return jnp.stack([a * c - bb * s, a * s + bb * c], axis=-1).reshape(b, n, h, d)


def timestep_embedding(cfg: Config, t):
    """t: [B] -> [B, timeEmbedding] (cosines then sines of t * 1000 * freq)."""
    half = cfg.timeEmbedding // 2
    freq = np.exp(-math.log(10000.0) * np.arange(half) / half)
    arg = t[:, None].astype(jnp.float32) * 1000 * jnp.asarray(freq, jnp.float32)[None]
    return jnp.concatenate([jnp.cos(arg), jnp.sin(arg)], axis=-1)


def encode_text(params, cfg: Config, ids, mask):
    """ids, mask: [B, T] (T = maxTextTokens). Returns hidden [B, T, th] and pooled [B, th]."""
    th = cfg.textHidden
    nh = cfg.textHeads
    b, t = ids.shape
    x = params["text.embed"][ids]
    if cfg.textPositions == "learned":
        x = x + params["text.position"][None, :t]
    else:
        cos, sin = text_rope_table(cfg, t)
    for i in range(cfg.textLayers):
        p = f"text.layers.{i}"
        h = layer_norm(x, params[f"{p}.norm1.weight"], params[f"{p}.norm1.bias"])
        qkv = linear(params, f"{p}.qkv", h).reshape(b, t, 3, nh, th // nh)
        q, k = qkv[:, :, 0], qkv[:, :, 1]
        if cfg.textPositions == "rope":
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        a = attention(q, k, qkv[:, :, 2], mask).reshape(b, t, th)
        x = x + linear(params, f"{p}.proj", a)
        h = layer_norm(x, params[f"{p}.norm2.weight"], params[f"{p}.norm2.bias"])
        x = x + linear(params, f"{p}.mlp2", gelu(linear(params, f"{p}.mlp1", h)))
    h = layer_norm(x, params["text.final_norm.weight"], params["text.final_norm.bias"])
    m = mask.astype(jnp.float32)[..., None]
    pooled = (h * m).sum(1) / m.sum(1)
    return h, pooled


def forward(params, cfg: Config, ids, mask, latent, t, cos, sin, pos=None):
    """The network output for a batch: ids/mask [B, T], latent [B, N, patchDim], t [B],
    cos/sin [N, headDim/2], pos [N, 4 * positionFrequencies] (`position_features`; only read
    when the model has them). Returns [B, N, patchDim] (velocity or clean image, per
    `cfg.prediction`)."""
    d, nh, hd = cfg.hidden, cfg.heads, cfg.head_dim
    b, tt = ids.shape
    n = latent.shape[1]
    text, pooled = encode_text(params, cfg, ids, mask)

    a = silu(linear(params, "time_in.in", timestep_embedding(cfg, t)))
    vec = linear(params, "time_in.out", a)
    a = silu(linear(params, "vector_in.in", pooled))
    vec = silu(vec + linear(params, "vector_in.out", a))

    key_mask = jnp.concatenate([mask, jnp.ones((b, n), bool)], axis=1)
    txt = linear(params, "txt_in", text)
    img = linear(params, "img_in", latent)
    if cfg.positionFrequencies > 0:
        img = img + linear(params, "pos_in", pos)[None]

    def qkv_of(p, xs, mod_shift, mod_scale, rope):
        xn = layer_norm(xs) * (1 + mod_scale[:, None]) + mod_shift[:, None]
        q, k, v = jnp.split(linear(params, f"{p}.qkv", xn), 3, axis=-1)
        rows = xs.shape[1]
        q = rms_norm(q.reshape(b, rows, nh, hd), params[f"{p}.query_norm.weight"])
        k = rms_norm(k.reshape(b, rows, nh, hd), params[f"{p}.key_norm.weight"])
        v = v.reshape(b, rows, nh, hd)
        if rope:
            q = apply_rope(q, cos, sin)
            k = apply_rope(k, cos, sin)
        return q, k, v

    for i in range(cfg.doubleBlocks):
        pi, pt = f"double.{i}.img", f"double.{i}.txt"
        mi = jnp.split(linear(params, f"{pi}.mod", vec), 6, axis=-1)
        mt = jnp.split(linear(params, f"{pt}.mod", vec), 6, axis=-1)
        qt, kt, vt = qkv_of(pt, txt, mt[0], mt[1], False)
        qi, ki, vi = qkv_of(pi, img, mi[0], mi[1], True)
        o = attention(
            jnp.concatenate([qt, qi], 1), jnp.concatenate([kt, ki], 1), jnp.concatenate([vt, vi], 1), key_mask
        ).reshape(b, tt + n, d)
        outs = []
        for p, xs, m, ao in ((pt, txt, mt, o[:, :tt]), (pi, img, mi, o[:, tt:])):
            xs = xs + m[2][:, None] * linear(params, f"{p}.proj", ao)
            xn = layer_norm(xs) * (1 + m[4][:, None]) + m[3][:, None]
            xs = xs + m[5][:, None] * linear(params, f"{p}.mlp2", gelu(linear(params, f"{p}.mlp1", xn)))
            outs.append(xs)
        txt, img = outs

    x = jnp.concatenate([txt, img], axis=1)
    l = tt + n
    for i in range(cfg.singleBlocks):
        p = f"single.{i}"
        shift, scale, gate = jnp.split(linear(params, f"{p}.mod", vec), 3, axis=-1)
        xn = layer_norm(x) * (1 + scale[:, None]) + shift[:, None]
        h = linear(params, f"{p}.linear1", xn)
        q, k, v = h[..., :d], h[..., d : 2 * d], h[..., 2 * d : 3 * d]
        mlp = h[..., 3 * d :]
        q = rms_norm(q.reshape(b, l, nh, hd), params[f"{p}.query_norm.weight"])
        k = rms_norm(k.reshape(b, l, nh, hd), params[f"{p}.key_norm.weight"])
        v = v.reshape(b, l, nh, hd)
        q = jnp.concatenate([q[:, :tt], apply_rope(q[:, tt:], cos, sin)], 1)
        k = jnp.concatenate([k[:, :tt], apply_rope(k[:, tt:], cos, sin)], 1)
        o = attention(q, k, v, key_mask).reshape(b, l, d)
        y = linear(params, f"{p}.linear2", jnp.concatenate([o, gelu(mlp)], axis=-1))
        x = x + gate[:, None] * y

    shift, scale = jnp.split(linear(params, "final.mod", vec), 2, axis=-1)
    xn = layer_norm(x[:, tt:]) * (1 + scale[:, None]) + shift[:, None]
    return linear(params, "final.linear", xn)


def batch_tokens(cfg: Config, prompts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.zeros((len(prompts), cfg.maxTextTokens), np.int32)
    mask = np.zeros((len(prompts), cfg.maxTextTokens), bool)
    for i, p in enumerate(prompts):
        t = tokenize(cfg, p)
        ids[i, : len(t)] = t
        mask[i, : len(t)] = True
    return ids, mask


def euler_step(cfg: Config, out, x, t, t_next):
    """One sampler step from the network output, as the Swift engine takes it."""
    if cfg.prediction == "x":
        r = np.float32(t_next) / np.float32(t)
        return r * x + (1 - r) * out
    return x + (np.float32(t_next) - np.float32(t)) * out


def sample(params, cfg: Config, prompt: str, width: int, height: int, steps: int, seed: int) -> np.ndarray:
    """The engine's generation for one request: returns the final latent [N, patchDim]."""
    p = cfg.patchSize
    rows, cols = height // p, width // p
    n = rows * cols
    ids, mask = batch_tokens(cfg, [prompt])
    k = int(mask.sum())
    ids, mask = ids[:, :k], mask[:, :k]
    cos, sin = rope_table(cfg, rows, cols)
    pos = position_features(cfg, rows, cols)
    times = schedule(steps, n)
    x = swift_noise(seed, n * cfg.patch_dim).reshape(1, n, cfg.patch_dim)
    f = jax.jit(lambda pr, xx, tt: forward(pr, cfg, ids, mask, xx, tt, cos, sin, pos))
    for i in range(steps):
        out = np.asarray(f(params, x, np.array([times[i]], np.float32)))
        x = euler_step(cfg, out, x, times[i], times[i + 1]).astype(np.float32)
    return x[0]
