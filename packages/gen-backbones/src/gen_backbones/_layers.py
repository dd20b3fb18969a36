"""Shared building blocks: embeddings, norms, resampling (all channels-last)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

#: Padding of the 3x3 convolutions: "SAME" pads with zeros (the study's nets), "REFLECT" mirrors
#: the border, so that stationary sky noise at the edge looks like the interior. Measured on the
#: smoke data (docs/results.md, realism diagnosis): REFLECT alone did NOT remove the bright
#: outermost ring of an under-trained ddpm-tiny; the option stays for experiments.
PADDINGS = ("SAME", "REFLECT")


def check_padding(padding: str) -> None:
    """Raise a ValueError naming ``padding`` unless it is one of :data:`PADDINGS`."""
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")


#: How the conditioning labels enter the network. "raw" (the study's nets): the NCSN++ embeds the
#: value itself sinusoidally, whose fastest frequency is 1 rad per unit, so over z in [0, 4] every
#: feature is nearly linear; the DDPM adds ``Dense(1, D)(z)``. "scaled": the redshift (x250) and
#: the guidance scale 1 - 1/w (x1000; NCSN++ only) are multiplied by ``SCALAR_SCALES`` (1000 / their
#: range, as the DDPM's ``t * 1000`` time embedding) before a sinusoidal embedding and an MLP, so
#: the features resolve redshift steps of ~0.01 (the 4000 A break crosses a band in dz ~ 0.3).
#: Time (t, h = t - r) stays raw: pMF's target differentiates the net along t (a JVP), and with h
#: scaled by 1000 that derivative grew with it — a pmf-tiny run's loss went from ~2e3 to 1.7e5 by
#: step 1,300 (docs/results.md, issue 17).
SCALAR_EMBEDDINGS = ("raw", "scaled")
#: Multipliers of the "scaled" embedding: 1 - 1/w lies in [0, 1], z in [0, 4]; t and h stay raw.
SCALAR_SCALES = {"t": 1.0, "h": 1.0, "w": 1000.0, "z": 250.0}


def check_scalar_embedding(kind: str) -> None:
    """Raise a ValueError naming ``kind`` unless it is one of :data:`SCALAR_EMBEDDINGS`."""
    if kind not in SCALAR_EMBEDDINGS:
        raise ValueError(f"scalar_embedding must be one of {SCALAR_EMBEDDINGS}, got {kind!r}")


def sinusoidal(x: jax.Array, dim: int, max_period: float = 10000.0) -> jax.Array:
    """Sinusoidal embedding ``(B,) -> (B, dim)``: ``[sin(x f_k), cos(x f_k)]``.

    ``f_k = max_period ** (-2k / dim)``, k = 0..dim/2-1 (Lizarraga et al.'s ``pos_encoding``).
    """
    if dim % 2:
        raise ValueError(f"sinusoidal embedding dim must be even, got {dim}")
    freqs = 1.0 / (max_period ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    arg = x.astype(jnp.float32)[:, None] * jnp.asarray(freqs)[None, :]
    return jnp.concatenate([jnp.sin(arg), jnp.cos(arg)], axis=-1)


class ScalarEmbed(nnx.Module):
    """Scalar ``(B,)`` -> sinusoidal(freq_dim) of ``scale * s`` -> Dense -> SiLU -> Dense -> ``(B, emb_dim)``."""

    def __init__(self, freq_dim, emb_dim, scale: float = 1.0, *, dtype, rngs):
        self.freq_dim = freq_dim
        self.scale = float(scale)
        self.fc1 = nnx.Linear(freq_dim, emb_dim, dtype=dtype, rngs=rngs)
        self.fc2 = nnx.Linear(emb_dim, emb_dim, dtype=dtype, rngs=rngs)

    def __call__(self, s):
        x = sinusoidal(jnp.asarray(s, jnp.float32) * self.scale, self.freq_dim)
        return self.fc2(jax.nn.silu(self.fc1(x)))


def num_groups(channels: int, max_groups: int = 32, min_size: int = 4) -> int:
    """Largest group count <= ``max_groups`` dividing ``channels`` with >= ``min_size`` per group."""
    g = max(1, min(max_groups, channels // min_size))
    while channels % g:
        g -= 1
    return g


def max_pool2(x: jax.Array) -> jax.Array:
    """2x2 max pooling, ``(B,H,W,C) -> (B,H/2,W/2,C)``."""
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _interp_matrix(n: int) -> np.ndarray:
    """``(2n, n)`` linear interpolation matrix with ``align_corners=True`` (PyTorch semantics)."""
    m = 2 * n
    a = np.zeros((m, n), np.float32)
    if n == 1:
        a[:, 0] = 1.0
        return a
    pos = np.arange(m) * (n - 1) / (m - 1)
    lo = np.minimum(np.floor(pos).astype(int), n - 2)
    frac = pos - lo
    a[np.arange(m), lo] = 1.0 - frac
    a[np.arange(m), lo + 1] = frac
    return a


def upsample_bilinear2(x: jax.Array) -> jax.Array:
    """x2 bilinear upsampling with ``align_corners=True`` (``nn.Upsample`` of the baseline)."""
    _, h, w, _ = x.shape
    ah = jnp.asarray(_interp_matrix(h), x.dtype)
    aw = jnp.asarray(_interp_matrix(w), x.dtype)
    return jnp.einsum("ih,jw,bhwc->bijc", ah, aw, x)


def upsample_nearest2(x: jax.Array) -> jax.Array:
    """x2 nearest-neighbour upsampling."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class SelfAttention(nnx.Module):
    """Multi-head self-attention over the H*W tokens of a feature map, residual, in XLA.

    Uses ``jax.nn.dot_product_attention(implementation="xla")`` (never cuDNN: it has no
    forward-mode rule, and the MeanFlow loss differentiates the network with ``jax.jvp``).
    """

    def __init__(self, channels: int, num_heads: int, *, dtype, rngs: nnx.Rngs):
        if channels % num_heads:
            raise ValueError(f"attention: channels {channels} not divisible by heads {num_heads}")
        self.num_heads = num_heads
        self.norm = nnx.GroupNorm(channels, num_groups(channels), dtype=dtype, rngs=rngs)
        self.qkv = nnx.Linear(channels, 3 * channels, dtype=dtype, rngs=rngs)
        self.proj = nnx.Linear(channels, channels, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, h, w, c = x.shape
        n = self.num_heads
        qkv = self.qkv(self.norm(x)).reshape(b, h * w, 3, n, c // n)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        out = jax.nn.dot_product_attention(q, k, v, implementation="xla")
        out = self.proj(out.reshape(b, h, w, c))
        return (x + out) / math.sqrt(2.0)


def redshift_embedding(embed, null: nnx.Param, z, drop, batch: int) -> jax.Array:
    """``embed(z)`` ``(B, D)`` float32, with the learned ``null`` vector where ``drop`` (or z is None).

    ``z`` ``(B,)`` raw redshift or None (= every row unconditional); ``drop`` ``(B,)`` bool or None.
    """
    nul = jnp.broadcast_to(null[...].astype(jnp.float32), (batch, null.shape[-1]))
    if z is None:
        return nul
    zemb = embed(z).astype(jnp.float32)
    if drop is None:
        return zemb
    return jnp.where(jnp.asarray(drop, bool)[:, None], nul, zemb)
