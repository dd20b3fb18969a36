"""ode-samplers: diffusion and flow samplers in JAX for any model_fn(x, t), and few-step
flow-map models model_fn(x, t, r) (MeanFlow) through method="mean_flow".

    from ode_samplers import VPSchedule, FlowSchedule, sample, guided
    sched = VPSchedule.linear(beta_start=1e-4, beta_end=0.02, num_train_steps=1000)
    x0 = sample(model_fn, noise, schedule=sched, method="dpmpp_2m", num_steps=30)

Time t in [0, 1]: t = 0 data, t = 1 noise; a discrete timestep n is t = (n + 1) / N. Any object
with the members of the `Schedule` protocol works as a schedule. Exact-score test problems:
`ode_samplers.testing`.
"""

from ._custom_types import FlowMapFn, ModelFn, Schedule
from ._grid import SPACINGS, time_grid
from ._guidance import guided
from ._samplers import METHODS, PREDICTIONS, nfe, sample
from ._schedules import FlowSchedule, VPSchedule

__version__ = "0.1.0"

__all__ = [
    "METHODS",
    "PREDICTIONS",
    "SPACINGS",
    "FlowMapFn",
    "FlowSchedule",
    "ModelFn",
    "Schedule",
    "VPSchedule",
    "guided",
    "nfe",
    "sample",
    "time_grid",
]
