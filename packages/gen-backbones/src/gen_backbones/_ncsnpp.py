"""``NCSNppUNet``: NCSN++-style U-Net for pixel MeanFlow (x-prediction)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from ._layers import (
    SCALAR_SCALES,
    ScalarEmbed,
    SelfAttention,
    check_padding,
    check_scalar_embedding,
    num_groups,
    redshift_embedding,
    upsample_nearest2,
)

CONDITIONINGS = ("t_and_h", "h_only")


class ResBlock(nnx.Module):
    """GN -> SiLU -> conv3x3 -> GN -> scale-shift(emb) -> SiLU -> conv3x3, skip, / sqrt(2)."""

    def __init__(self, cin, cout, emb_dim, *, padding="SAME", dtype, rngs):
        kw = dict(dtype=dtype, rngs=rngs)
        self.norm1 = nnx.GroupNorm(cin, num_groups(cin), **kw)
        self.conv1 = nnx.Conv(cin, cout, (3, 3), padding=padding, **kw)
        self.film = nnx.Linear(emb_dim, 2 * cout, **kw)
        self.norm2 = nnx.GroupNorm(cout, num_groups(cout), **kw)
        self.conv2 = nnx.Conv(cout, cout, (3, 3), padding=padding, **kw)
        self.skip = nnx.Conv(cin, cout, (1, 1), **kw) if cin != cout else None

    def __call__(self, x, emb):
        h = self.conv1(jax.nn.silu(self.norm1(x)))
        scale, shift = jnp.split(self.film(emb)[:, None, None, :], 2, axis=-1)
        h = self.norm2(h) * (1.0 + scale) + shift
        h = self.conv2(jax.nn.silu(h))
        skip = x if self.skip is None else self.skip(x)
        return (skip + h) / math.sqrt(2.0)


class NCSNppUNet(nnx.Module):
    """NCSN++/DDPM++-style U-Net conditioned on (t, h = t - r, w, z); predicts the clean image.

    Levels have widths ``ch * ch_mult[i]``, ``num_res_blocks`` residual blocks each (``+1`` on the
    way up, fed skip concatenations), stride-2 conv downsampling, nearest+conv upsampling.
    Self-attention follows every block of the ``attn_levels`` lowest-resolution levels and sits
    in the middle block (Res-Attn-Res). Each scalar gets a sinusoidal embedding of its raw value
    and an MLP; their sum (SiLU) drives a scale-shift in every residual block. ``conditioning``:
    ``"t_and_h"`` embeds t and h, ``"h_only"`` embeds only h (pixel MeanFlow's official choice).
    ``padding`` of every 3x3 conv: ``"SAME"`` (zeros) or ``"REFLECT"`` (``gen_backbones.PADDINGS``).
    ``scalar_embedding``: ``"raw"`` (the study's) or ``"scaled"`` (``gen_backbones.SCALAR_EMBEDDINGS``).
    """

    def __init__(
        self,
        channels=5,
        ch=128,
        ch_mult=(1, 2, 2, 2),
        num_res_blocks=2,
        attn_levels=1,
        num_heads=4,
        emb_dim=None,
        freq_dim=None,
        conditioning="t_and_h",
        padding="SAME",
        scalar_embedding="raw",
        *,
        dtype=jnp.float32,
        rngs,
    ):
        if conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning must be one of {CONDITIONINGS}, got {conditioning!r}")
        emb_dim = emb_dim or 4 * ch
        freq_dim = freq_dim or ch
        check_padding(padding)
        check_scalar_embedding(scalar_embedding)
        kw = dict(dtype=dtype, rngs=rngs)
        pad = dict(padding=padding)
        self.dtype = dtype
        self.conditioning = conditioning
        self.levels = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        n_lv = len(ch_mult)
        attn_at = {i for i in range(n_lv) if i >= n_lv - attn_levels}

        def embed(name):
            scale = SCALAR_SCALES[name] if scalar_embedding == "scaled" else 1.0
            return ScalarEmbed(freq_dim, emb_dim, scale, **kw)

        self.embed_t = embed("t") if conditioning == "t_and_h" else None
        self.embed_h = embed("h")
        self.embed_w = embed("w")
        self.embed_z = embed("z")
        self.null_z = nnx.Param(jnp.zeros((emb_dim,), jnp.float32))

        self.conv_in = nnx.Conv(channels, ch, (3, 3), **pad, **kw)
        down, skips, c = {}, [ch], ch
        for i, m in enumerate(ch_mult):
            for j in range(num_res_blocks):
                down[f"res{i}_{j}"] = ResBlock(c, ch * m, emb_dim, **pad, **kw)
                c = ch * m
                if i in attn_at:
                    down[f"attn{i}_{j}"] = SelfAttention(c, num_heads, **kw)
                skips.append(c)
            if i < n_lv - 1:
                down[f"down{i}"] = nnx.Conv(c, c, (3, 3), strides=2, **pad, **kw)
                skips.append(c)
        self.down = nnx.Dict(down)
        self.mid_res1 = ResBlock(c, c, emb_dim, **pad, **kw)
        self.mid_attn = SelfAttention(c, num_heads, **kw)
        self.mid_res2 = ResBlock(c, c, emb_dim, **pad, **kw)
        up = {}
        for i in reversed(range(n_lv)):
            for j in range(num_res_blocks + 1):
                up[f"res{i}_{j}"] = ResBlock(c + skips.pop(), ch * ch_mult[i], emb_dim, **pad, **kw)
                c = ch * ch_mult[i]
                if i in attn_at:
                    up[f"attn{i}_{j}"] = SelfAttention(c, num_heads, **kw)
            if i > 0:
                up[f"up{i}"] = nnx.Conv(c, c, (3, 3), **pad, **kw)
        self.up = nnx.Dict(up)
        self.norm_out = nnx.GroupNorm(c, num_groups(c), **kw)
        self.conv_out = nnx.Conv(c, channels, (3, 3), **pad, **kw)

    def embedding(self, t, r=None, w=None, z=None, drop=None) -> jax.Array:
        """Conditioning vector ``(B, emb_dim)`` float32 from per-example scalars ``(B,)``."""
        t = jnp.asarray(t, jnp.float32)
        h = jnp.zeros_like(t) if r is None else t - jnp.asarray(r, jnp.float32)
        wp = jnp.zeros_like(t) if w is None else 1.0 - 1.0 / jnp.asarray(w, jnp.float32)
        emb = self.embed_h(h) + self.embed_w(wp)
        if self.embed_t is not None:
            emb = emb + self.embed_t(t)
        zf = None if z is None else jnp.asarray(z, jnp.float32)
        return emb.astype(jnp.float32) + redshift_embedding(
            self.embed_z, self.null_z, zf, drop, t.shape[0]
        )

    def __call__(self, x, t, r=None, w=None, z=None, drop=None):
        """x ``(B,H,W,C)``, t/r/w/z ``(B,)``, drop ``(B,)`` bool -> x-prediction ``(B,H,W,C)``."""
        emb = jax.nn.silu(self.embedding(t, r, w, z, drop)).astype(self.dtype)
        h = self.conv_in(x.astype(self.dtype))
        hs = [h]
        for i in range(self.levels):
            for j in range(self.num_res_blocks):
                h = self.down[f"res{i}_{j}"](h, emb)
                if f"attn{i}_{j}" in self.down:
                    h = self.down[f"attn{i}_{j}"](h)
                hs.append(h)
            if f"down{i}" in self.down:
                h = self.down[f"down{i}"](h)
                hs.append(h)
        h = self.mid_res2(self.mid_attn(self.mid_res1(h, emb)), emb)
        for i in reversed(range(self.levels)):
            for j in range(self.num_res_blocks + 1):
                h = self.up[f"res{i}_{j}"](jnp.concatenate([h, hs.pop()], axis=-1), emb)
                if f"attn{i}_{j}" in self.up:
                    h = self.up[f"attn{i}_{j}"](h)
            if f"up{i}" in self.up:
                h = self.up[f"up{i}"](upsample_nearest2(h))
        h = self.conv_out(jax.nn.silu(self.norm_out(h)))
        return h.astype(x.dtype)
