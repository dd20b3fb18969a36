"""The redshift domain of every galgen model and the one check of conditioning redshifts that
every sampling entry point shares."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

__all__ = ["REDSHIFT_DOMAIN", "check_redshift"]

#: ``(low, high)`` of the conditioning redshift every model is trained and sampled on: GalaxiesML's
#: spectroscopic range. Label smoothing clips to it; ``galaxiesml_data.REDSHIFT_RANGE`` (what a data
#: file may hold) equals it (tested in galgen, which uses both).
REDSHIFT_DOMAIN: tuple[float, float] = (0.0, 4.0)


def check_redshift(redshift: Any, where: str, *, high: float | None = None) -> None:
    """Refuse NaN, infinite or negative redshifts (and, given ``high``, any above it) with a
    ``ValueError`` naming ``where`` and the first bad index.

    Only concrete values are checked (numbers, numpy or jax arrays); inside ``jax.jit`` the
    redshifts are tracers and pass through, so check them before the jitted call. ``None``
    (unconditional) passes.
    """
    if redshift is None or any(isinstance(v, jax.core.Tracer) for v in jax.tree.leaves(redshift)):
        return
    try:
        z = np.asarray(redshift, np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(
            f"{where}: redshift must be numbers, got {type(redshift).__name__}"
        ) from None
    top = np.inf if high is None else high
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(~np.isfinite(z) | (z < 0) | (z > top))
    if bad.size:
        i = int(bad[0])
        more = f" (and {bad.size - 1} more)" if bad.size > 1 else ""
        domain = ">= 0" if high is None else f"in [0, {high:g}]"
        raise ValueError(
            f"{where}: redshift[{i}] = {z[i]:g}{more}; redshifts must be finite and {domain}"
        )
