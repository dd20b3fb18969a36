"""diffusion-core: the DDPM objective and the training engine every galgen model uses.

The engine (`train`) is objective-agnostic: an objective is ``loss_fn(params, batch, key) ->
(scalar, metrics)``. `ddpm_loss` is the DDPM baseline objective; `ddpm_model_fn` turns trained
parameters into the ``model_fn(x, t)`` that `ode_samplers.sample` takes.
"""

from ._config import DictConfig, TrainConfig
from ._custom_types import ApplyFn, Array, BatchesFn, LossFn
from ._ddpm import (
    DDPMConfig,
    asinh_noise_gate,
    baseline_stats,
    ddpm_loss,
    ddpm_model_fn,
    ddpm_schedule,
    ddpm_train_config,
    smooth_redshift,
    with_baseline,
)
from ._engine import (
    CONFIG_FILE,
    METRICS_FILE,
    TrainState,
    default_mesh,
    ema_update,
    latest_step,
    load_checkpoint,
    load_ema_params,
    make_optimizer,
    step_compiler_options,
    train,
)
from ._losses import huber_loss
from ._mixture import MIXTURE_COMPONENTS, fit_pixel_mixture, mixture_posterior_mean
from ._redshift import REDSHIFT_DOMAIN, check_redshift

__version__ = "0.1.0"

__all__ = [
    "REDSHIFT_DOMAIN",
    "ApplyFn",
    "Array",
    "BatchesFn",
    "LossFn",
    "huber_loss",
    "asinh_noise_gate",
    "baseline_stats",
    "MIXTURE_COMPONENTS",
    "fit_pixel_mixture",
    "mixture_posterior_mean",
    "check_redshift",
    "CONFIG_FILE",
    "METRICS_FILE",
    "DDPMConfig",
    "DictConfig",
    "ddpm_loss",
    "ddpm_model_fn",
    "ddpm_schedule",
    "ddpm_train_config",
    "smooth_redshift",
    "with_baseline",
    "TrainConfig",
    "TrainState",
    "default_mesh",
    "ema_update",
    "latest_step",
    "load_checkpoint",
    "load_ema_params",
    "make_optimizer",
    "step_compiler_options",
    "train",
]
