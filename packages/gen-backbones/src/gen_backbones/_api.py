"""Presets, ``build`` and the pure ``Backbone`` functions; parameter and FLOP counts."""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from ._ddpm import DDPMUNet
from ._ncsnpp import NCSNppUNet

_ARCHS = {"ddpm": DDPMUNet, "ncsnpp": NCSNppUNet}
_PREDICTION = {"ddpm": "eps", "ncsnpp": "x"}
_DOWNSAMPLES = {"ddpm": lambda cfg: 3, "ncsnpp": lambda cfg: len(cfg["ch_mult"]) - 1}

#: Architecture presets. Paper sizes are counted at 64x64x5 (the study's configuration).
PRESETS: dict[str, dict[str, Any]] = {
    # Lizarraga et al. UNet_conditional_conv: 21.4M params at 64x64x5.
    "ddpm-paper": dict(arch="ddpm", ch=64, mid_mult=8, time_dim=256),
    # Pixel-MeanFlow NCSN++ nets matching the study's 1.26M and 25.2M parameters.
    "pmf-1m": dict(
        arch="ncsnpp", ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, attn_levels=1,
        num_heads=4, conditioning="h_only",
    ),
    "pmf-25m": dict(
        arch="ncsnpp", ch=104, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_levels=1,
        num_heads=4, conditioning="h_only",
    ),
    # Tiny CPU presets (<= 600k params) for tests, demos and the CPU studies. The DDPM UNet's
    # input passes only through ``ch``-wide feature maps: at ch=6 or 8 it learns to denoise four of
    # five bands and leaves one dead (tests/test_backbones.py::test_ddpm_tiny_denoises_every_band).
    "ddpm-tiny": dict(arch="ddpm", ch=12, mid_mult=4, time_dim=64),
    "pmf-tiny": dict(
        arch="ncsnpp", ch=8, ch_mult=(1, 2, 4), num_res_blocks=1, attn_levels=1,
        num_heads=2, freq_dim=32, conditioning="h_only",
    ),
}  # fmt: skip


class Backbone(NamedTuple):
    """A network as pure functions.

    ``init(key) -> params`` (nested dict of float32 arrays);
    ``apply(params, x, t, r=None, w=None, z=None, drop=None) -> y`` with ``x, y`` ``(B,H,W,C)`` and
    per-example ``(B,)`` scalars; ``config``: the resolved settings (``arch``, ``prediction``,
    ``image_size``, ``channels``, ``dtype`` and the architecture keywords).
    """

    init: Callable[[jax.Array], dict]
    apply: Callable[..., jax.Array]
    config: dict[str, Any]


def build(
    name: str, image_size: int = 64, channels: int = 5, dtype: Any = jnp.float32, **overrides: Any
) -> Backbone:
    """Build preset ``name`` (a key of ``PRESETS``) for ``(image_size, image_size, channels)`` images.

    ``overrides`` replace architecture keywords of the preset (e.g. ``ch=32``,
    ``conditioning="t_and_h"``). ``dtype`` is the compute dtype (``jnp.bfloat16`` for GPU
    inference); parameters always stay float32.
    """
    if name not in PRESETS:
        raise ValueError(
            f"gen_backbones.build: unknown preset {name!r}; choose from {sorted(PRESETS)}"
        )
    cfg = dict(PRESETS[name])
    arch = cfg.pop("arch")
    cls = _ARCHS[arch]
    allowed = set(inspect.signature(cls.__init__).parameters) - {
        "self",
        "channels",
        "dtype",
        "rngs",
    }
    bad = sorted(set(overrides) - allowed)
    if bad:
        raise ValueError(
            f"gen_backbones.build({name!r}): unknown option(s) {bad} for {cls.__name__}; "
            f"options are {sorted(allowed)}"
        )
    cfg.update(overrides)
    factor = 2 ** _DOWNSAMPLES[arch](cfg)
    if image_size <= 0 or image_size % factor:
        raise ValueError(
            f"gen_backbones.build({name!r}): image_size={image_size} must be a positive multiple "
            f"of {factor} (the net downsamples {factor}x)"
        )
    if channels <= 0:
        raise ValueError(f"gen_backbones.build({name!r}): channels={channels} must be positive")

    def make(key: jax.Array) -> nnx.Module:
        return cls(channels=channels, **cfg, dtype=dtype, rngs=nnx.Rngs(params=key))

    graphdef, _ = nnx.split(nnx.eval_shape(lambda: make(jax.random.key(0))))

    # LLVM at -O1: the init is all threefry and elementwise ops, run once; -O1 compiles it in a
    # third of the time (pmf-tiny 20 -> 7 s, ddpm-tiny 12 -> 4 s on 2 cores) and gives bitwise the
    # same parameters as the default -O3 (checked on pmf-tiny, ddpm-tiny, pmf-1m; -O0 does not).
    @functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 1})
    def init(key: jax.Array) -> dict:
        """Parameters for ``key`` (deterministic): a nested dict of float32 arrays."""
        return nnx.to_pure_dict(nnx.state(make(key)))

    def apply(params, x, t, r=None, w=None, z=None, drop=None) -> jax.Array:
        """Pure forward pass: ``x (B,H,W,C)``, ``t, r, w, z (B,)``, ``drop (B,) bool`` -> ``(B,H,W,C)``."""
        if x.ndim != 4 or x.shape[-1] != channels:
            raise ValueError(
                f"gen_backbones[{name}].apply: x must be (B,H,W,{channels}), got {x.shape}"
            )
        return nnx.merge(graphdef, params)(x, t, r=r, w=w, z=z, drop=drop)

    config = dict(
        name=name, arch=arch, prediction=_PREDICTION[arch], image_size=image_size,
        channels=channels, dtype=jnp.dtype(dtype).name, **cfg,
    )  # fmt: skip
    return Backbone(init=init, apply=apply, config=config)


def param_count(params) -> int:
    """Total number of scalar parameters in a pytree (works on ``jax.eval_shape`` output too)."""
    return int(sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(params)))


def forward_flops(
    net: Backbone,
    params=None,
    batch_size: int = 1,
    image_size: int | None = None,
    channels: int | None = None,
) -> float:
    """FLOPs of one forward pass on ``batch_size`` images, from XLA's compiled ``cost_analysis()``.

    ``params`` may be real arrays or ``jax.eval_shape(net.init, key)`` (nothing is allocated);
    ``image_size``/``channels`` default to the net's config. Conditioning inputs t, r, w, z, drop
    are all passed, so the embedding MLPs are counted. XLA counts a multiply-add as 2 FLOPs.
    """
    size = image_size or net.config["image_size"]
    chans = channels or net.config["channels"]
    if params is None:
        params = jax.eval_shape(net.init, jax.random.key(0))
    spec = lambda shape, dt=jnp.float32: jax.ShapeDtypeStruct(shape, dt)  # noqa: E731
    b = (batch_size,)
    params_spec = jax.tree.map(lambda p: spec(p.shape, p.dtype), params)
    compiled = (
        jax.jit(net.apply)
        .lower(params_spec, spec((batch_size, size, size, chans)), spec(b), spec(b), spec(b),
               spec(b), spec(b, jnp.bool_))
        .compile()
    )  # fmt: skip
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0]
    return float(cost["flops"])
