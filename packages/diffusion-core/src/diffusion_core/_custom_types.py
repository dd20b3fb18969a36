"""Type aliases of the seams between packages: what a backbone, an objective and a data source
look like to the code that calls them. Owned here (the lowest package that needs them);
meanflow imports them from :mod:`diffusion_core`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax

Array = jax.Array

ApplyFn = Callable[..., Array]
"""A backbone's ``apply(params, x, t, r=None, w=None, z=None, drop=None) -> (B, H, W, C)``
(gen-backbones): ``x`` ``(B, H, W, C)`` float32, ``t``, ``r``, ``w``, ``z`` ``(B,)`` float32,
``drop`` ``(B,)`` bool. What the output means (ε, v or a clean image) is the objective's business."""

LossFn = Callable[[Any, Mapping[str, Array], Array], tuple[Array, Mapping[str, Any]]]
"""An objective: ``loss_fn(params, batch, key) -> (loss_scalar, metrics_dict)``, ``batch``
``{"image": (B, H, W, C), "redshift": (B,)}`` float32 (what :func:`train` optimises)."""

BatchesFn = Callable[[int], Iterable[Mapping[str, Any]]]
"""``batches_fn(start)``: an iterator of batches beginning at global batch index ``start``."""
