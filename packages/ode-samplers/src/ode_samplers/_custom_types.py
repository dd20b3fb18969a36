"""Types of the seams: what a model and a schedule look like to the samplers.

Time convention everywhere: continuous t in [0, 1], t = 0 data, t = 1 noise, on the forward path
x_t = alpha(t) * x_0 + sigma(t) * eps with log-SNR lambda(t) = log(alpha(t)^2 / sigma(t)^2)
(natural log, decreasing in t). A discrete timestep n of an N-step table is t = (n + 1) / N.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import jax
import numpy as np

Array = jax.Array

ModelFn = Callable[[Array, Array], Array]
"""``model_fn(x, t) -> prediction``: ``x`` (B, ...) float32 (the noise's float dtype), ``t`` (B,)
of the same dtype in [0, 1] (t = 0 data, t = 1 noise); returns x's shape: eps, x0, v or the flow
velocity dx/dt, as `sample`'s ``prediction`` says. Called inside one ``lax.scan`` (traced)."""

FlowMapFn = Callable[[Array, Array, Array], Array]
"""``model_fn(x, t, r) -> prediction``: a two-time (flow-map) model for ``method='mean_flow'``
(MeanFlow / pixel MeanFlow). ``x`` (B, ...) and ``t``, ``r`` (B,) in the noise's float dtype,
``1 >= t > r >= 0`` (``r`` = the next grid time, 0 on the last step to data); returns x's shape,
a prediction in `sample`'s ``prediction`` units whose deterministic DDIM step from t lands at r.
With ``prediction='flow'`` on `FlowSchedule` it is the average velocity ``u`` over [r, t]: the
step is ``x_r = x - (t - r) * u``. Called inside one ``lax.scan`` (traced)."""


@runtime_checkable
class Schedule(Protocol):
    """What `sample` and `time_grid` read from a schedule; `VPSchedule` and `FlowSchedule` are two.

    The samplers precompute every per-step coefficient once, on the host, in float64 NumPy
    (outside any trace, so a jitted `sample` sees constants): the two methods take and return
    float64 NumPy arrays. Subclassing nothing is needed: any object with these members works
    (``isinstance(obj, Schedule)`` checks that they exist). The `ode_samplers.testing` problems
    call in addition ``alpha(t)``, ``sigma(t)`` (and ``alpha_sigma_dot(t)`` for
    ``prediction='flow'``) on JAX arrays, as the built-in schedules provide.
    """

    #: 'rho' (euler/heun integrate x/alpha against sigma/alpha: VP) or 't' (x against t: flows).
    ode_space: str
    #: default first model-evaluation time of a grid, in (0, 1] (1.0 = pure noise).
    t_max: float
    #: default last model-evaluation time, in [0, t_max); > 0 means a final denoise step to t = 0.
    t_min: float
    #: N of a discrete N-step table (for 'trailing'/'leading' spacings), or None if continuous.
    num_train_steps: int | None

    def numpy(self, t: np.ndarray) -> dict[str, np.ndarray]:
        """Dict alpha, sigma, log_snr, alpha_dot, sigma_dot (d/dt): float64 arrays of t's shape."""
        ...

    def t_from_log_snr_numpy(self, lam: np.ndarray) -> np.ndarray:
        """Inverse of log_snr: float64 t in [0, 1] of lam's shape (lam in nats, +inf -> t = 0)."""
        ...


#: the protocol's members, read off the class (attributes, then methods).
_SCHEDULE_MEMBERS = tuple(Schedule.__annotations__) + tuple(
    name for name, v in vars(Schedule).items() if callable(v) and not name.startswith("_")
)


def _check_schedule(schedule, who: str) -> None:
    """TypeError naming the `Schedule` members `schedule` lacks (none for a valid one)."""
    missing = [m for m in _SCHEDULE_MEMBERS if not hasattr(schedule, m)]
    if missing:
        raise TypeError(
            f"{who}: schedule={schedule!r} is not an ode_samplers.Schedule; it lacks {missing} "
            "(see the Schedule protocol, or use VPSchedule / FlowSchedule)"
        )
