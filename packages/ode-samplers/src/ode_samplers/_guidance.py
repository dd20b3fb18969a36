"""Classifier-free guidance as a model_fn wrapper."""

from __future__ import annotations

from ._custom_types import Array, ModelFn


def guided(
    model_fn_cond: ModelFn,
    model_fn_uncond: ModelFn,
    scale: float | Array,
) -> ModelFn:
    """Classifier-free guidance: returns model_fn(x, t) = uncond + scale * (cond - uncond).

    Works with every method and prediction type (the combination is linear, so it is the same in
    eps, x0, v or flow space). `scale` is a scalar or broadcasts against the prediction (e.g.
    (B, 1, 1, 1) for per-example weights); scale = 1 is the conditional model, 0 the
    unconditional one. One call of the guided model_fn runs BOTH networks, so it costs 2 network
    passes: the NFE that `sample` reports counts guided calls, network passes are 2 x NFE.
    """

    def model_fn(x: Array, t: Array) -> Array:
        cond = model_fn_cond(x, t)
        uncond = model_fn_uncond(x, t)
        return uncond + scale * (cond - uncond)

    return model_fn
