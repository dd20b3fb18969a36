"""meanflow: redshift-conditioned pixel MeanFlow with training-time guidance.

One network evaluation per galaxy: :func:`pmf_loss` builds the training objective (thesis
Algorithm 1, or the official pixel-MeanFlow variant) for any backbone
``apply(params, x, t, r, w, z, drop) -> X``; :func:`sample` draws images in one or a few steps.
"""

from meanflow._config import PMFConfig
from meanflow._objective import (
    asinh_noise_gate,
    average_velocity,
    flow_matching_loss,
    gaussian_clean_image,
    meanflow_target,
    pmf_loss,
    sample_guidance_scale,
    sample_time_pairs,
    velocity_from_x,
    with_baseline,
)
from meanflow._sampling import check_guidance, pmf_model_fn, sample

__version__ = "0.1.0"

__all__ = [
    "check_guidance",
    "PMFConfig",
    "asinh_noise_gate",
    "average_velocity",
    "flow_matching_loss",
    "gaussian_clean_image",
    "meanflow_target",
    "pmf_loss",
    "pmf_model_fn",
    "sample",
    "sample_guidance_scale",
    "sample_time_pairs",
    "velocity_from_x",
    "with_baseline",
]
