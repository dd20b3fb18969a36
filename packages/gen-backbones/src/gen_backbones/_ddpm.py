"""``DDPMUNet``: re-implementation of Lizarraga et al.'s ``UNet_conditional_conv`` (eps-prediction)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from ._layers import (
    SCALAR_SCALES,
    ScalarEmbed,
    check_padding,
    check_scalar_embedding,
    max_pool2,
    redshift_embedding,
    sinusoidal,
    upsample_bilinear2,
)


def _gelu(x: jax.Array) -> jax.Array:
    return jax.nn.gelu(x, approximate=False)  # PyTorch nn.GELU() default (erf)


class DoubleConv(nnx.Module):
    """conv3x3 -> GroupNorm(1) -> GELU -> conv3x3 -> GroupNorm(1) [-> GELU(x + .) if residual]."""

    def __init__(self, cin, cout, cmid=None, residual=False, *, padding="SAME", dtype, rngs):
        cmid = cmid or cout
        self.residual = residual
        kw = dict(use_bias=False, padding=padding, dtype=dtype, rngs=rngs)
        self.conv1 = nnx.Conv(cin, cmid, (3, 3), **kw)
        self.norm1 = nnx.GroupNorm(cmid, 1, epsilon=1e-5, dtype=dtype, rngs=rngs)
        self.conv2 = nnx.Conv(cmid, cout, (3, 3), **kw)
        self.norm2 = nnx.GroupNorm(cout, 1, epsilon=1e-5, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        h = self.norm2(self.conv2(_gelu(self.norm1(self.conv1(x)))))
        return _gelu(x + h) if self.residual else h


def _condition(x: jax.Array, proj: jax.Array, scale_shift: bool) -> jax.Array:
    """Apply a block's projected embedding ``proj`` (B, C) or (B, 2C) to ``x`` (B, H, W, C):
    ``x + proj`` (the baseline's), or with ``scale_shift`` ``x * (1 + s) + b`` for
    ``proj = [s, b]`` (FiLM: the embedding also gains each channel, so the labels can brighten
    or redden the features where the galaxy is, not only shift every pixel alike)."""
    if not scale_shift:
        return x + proj[:, None, None, :]
    s, b = jnp.split(proj[:, None, None, :], 2, axis=-1)
    return x * (1.0 + s) + b


class Down(nnx.Module):
    """max-pool -> residual DoubleConv -> DoubleConv -> + SiLU/Dense(embedding)."""

    def __init__(self, cin, cout, emb_dim, *, padding="SAME", scale_shift=False, dtype, rngs):
        kw = dict(padding=padding, dtype=dtype, rngs=rngs)
        self.conv1 = DoubleConv(cin, cin, residual=True, **kw)
        self.conv2 = DoubleConv(cin, cout, **kw)
        self.scale_shift = scale_shift
        self.emb = nnx.Linear(emb_dim, cout * (2 if scale_shift else 1), dtype=dtype, rngs=rngs)

    def __call__(self, x, emb):
        x = self.conv2(self.conv1(max_pool2(x)))
        return _condition(x, self.emb(jax.nn.silu(emb)), self.scale_shift)


class Up(nnx.Module):
    """bilinear x2 -> concat(skip, x) -> residual DoubleConv -> DoubleConv -> + embedding."""

    def __init__(self, cin, cout, emb_dim, *, padding="SAME", scale_shift=False, dtype, rngs):
        kw = dict(padding=padding, dtype=dtype, rngs=rngs)
        self.conv1 = DoubleConv(cin, cin, residual=True, **kw)
        self.conv2 = DoubleConv(cin, cout, cin // 2, **kw)
        self.scale_shift = scale_shift
        self.emb = nnx.Linear(emb_dim, cout * (2 if scale_shift else 1), dtype=dtype, rngs=rngs)

    def __call__(self, x, skip, emb):
        x = jnp.concatenate([skip, upsample_bilinear2(x)], axis=-1)
        x = self.conv2(self.conv1(x))
        return _condition(x, self.emb(jax.nn.silu(emb)), self.scale_shift)


class DDPMUNet(nnx.Module):
    """The DDPM baseline U-Net (Lizarraga et al. 2025, ``UNet_conditional_conv``), NHWC.

    Widths ``ch * (1, 2, 4, 4)`` for stem and the three down stages, bottleneck
    ``4ch -> mid_mult*ch -> mid_mult*ch -> 4ch``; ups ``(8ch->2ch, 4ch->ch, 2ch->ch)``; 1x1 conv out.
    ``ch=64, mid_mult=8, time_dim=256`` is the paper model. Time enters as the 1000-step DDPM
    timestep ``t * 1000`` in a ``time_dim`` sinusoidal embedding; the raw redshift through
    ``Dense(1, time_dim)`` (or a learned null vector where ``drop``) is added to it.
    ``padding`` of every 3x3 conv: ``"SAME"`` (zeros, the baseline's) or ``"REFLECT"`` (the
    border pixels see mirrored sky instead of a zero frame, see ``gen_backbones.PADDINGS``).
    ``scalar_embedding="scaled"`` replaces ``Dense(1, time_dim)(z)`` by an MLP of the sinusoidal
    embedding of ``250 z`` (``gen_backbones.SCALAR_EMBEDDINGS``); the time embedding is unchanged.
    ``scale_shift=True`` (not the baseline's) makes each block's embedding a FiLM gain and shift,
    ``x (1 + s) + b``, instead of the added bias ``x + b``.
    """

    def __init__(
        self, channels=5, ch=64, mid_mult=8, time_dim=256, padding="SAME",
        scalar_embedding="raw", scale_shift=False, *, dtype=jnp.float32, rngs,
    ):  # fmt: skip
        c1, c2, c3, cm = ch * 2, ch * 4, ch * 4, ch * mid_mult
        check_padding(padding)
        check_scalar_embedding(scalar_embedding)
        kw = dict(padding=padding, dtype=dtype, rngs=rngs)
        bk = dict(kw, scale_shift=bool(scale_shift))
        self.time_dim = time_dim
        self.dtype = dtype
        self.inc = DoubleConv(channels, ch, **kw)
        self.down1 = Down(ch, c1, time_dim, **bk)
        self.down2 = Down(c1, c2, time_dim, **bk)
        self.down3 = Down(c2, c3, time_dim, **bk)
        self.bot1 = DoubleConv(c3, cm, **kw)
        self.bot2 = DoubleConv(cm, cm, **kw)
        self.bot3 = DoubleConv(cm, c3, **kw)
        self.up1 = Up(c3 + c2, c1, time_dim, **bk)
        self.up2 = Up(c1 + c1, ch, time_dim, **bk)
        self.up3 = Up(ch + ch, ch, time_dim, **bk)
        self.outc = nnx.Conv(ch, channels, (1, 1), dtype=dtype, rngs=rngs)
        if scalar_embedding == "scaled":
            z_scale = SCALAR_SCALES["z"]
            self.label_emb = ScalarEmbed(time_dim, time_dim, z_scale, dtype=dtype, rngs=rngs)
        else:
            self.label_emb = _RawLinear(time_dim, dtype=dtype, rngs=rngs)
        self.null_emb = nnx.Param(jnp.zeros((time_dim,), jnp.float32))

    def __call__(self, x, t, r=None, w=None, z=None, drop=None):
        """x ``(B,H,W,C)``, t ``(B,)`` in [0,1] -> eps prediction ``(B,H,W,C)``. r, w ignored."""
        del r, w
        emb = sinusoidal(t * 1000.0, self.time_dim)
        emb = emb + redshift_embedding(self.label_emb, self.null_emb, z, drop, t.shape[0])
        emb = emb.astype(self.dtype)
        x1 = self.inc(x.astype(self.dtype))
        x2 = self.down1(x1, emb)
        x3 = self.down2(x2, emb)
        x4 = self.down3(x3, emb)
        x4 = self.bot3(self.bot2(self.bot1(x4)))
        h = self.up1(x4, x3, emb)
        h = self.up2(h, x2, emb)
        h = self.up3(h, x1, emb)
        return self.outc(h).astype(x.dtype)


class _RawLinear(nnx.Module):
    """``Linear(1, D)`` applied to a raw scalar ``(B,) -> (B, D)``."""

    def __init__(self, dim, *, dtype, rngs):
        self.linear = nnx.Linear(1, dim, dtype=dtype, rngs=rngs)

    def __call__(self, z):
        return self.linear(z.astype(jnp.float32)[:, None])
