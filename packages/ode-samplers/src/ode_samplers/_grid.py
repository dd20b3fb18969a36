"""Sampler time grids."""

from __future__ import annotations

import numpy as np

from ._custom_types import Schedule, _check_schedule

SPACINGS = ("time_uniform", "log_snr", "quadratic", "trailing", "leading")


def time_grid(
    schedule: Schedule,
    num_steps: int,
    spacing: str = "time_uniform",
    t_max: float | None = None,
    t_min: float | None = None,
    final_denoise: bool = True,
) -> np.ndarray:
    """Times t_0 > t_1 > ... > t_K of a K-step sampler, as a float64 NumPy array of length K + 1.

    The model is evaluated at t_0..t_{K-1} (and at midpoints for two-stage methods); t_K is the
    end time. With `t_min > 0` and `final_denoise=True` the K evaluation times run from `t_max` to
    `t_min` (both fixed as K varies) and t_K = 0: the last step returns the model's x0 estimate.
    With `final_denoise=False` the K + 1 points run from `t_max` to `t_min`. With `t_min == 0`
    (the FlowSchedule default) the K + 1 points run from `t_max` to 0.

    spacing: 'time_uniform' (uniform in t), 'log_snr' (uniform in lambda), 'quadratic' (uniform
    in sqrt(t - t_min), dense near data), or for discrete schedules 'trailing'
    (n_k = round(N - k N/K) - 1) and 'leading' (n_k = (K - 1 - k) * (N // K)), which always end
    with a final denoise to t = 0 and ignore t_max / t_min.
    """
    _check_schedule(schedule, "time_grid")
    if int(num_steps) != num_steps or num_steps < 1:
        raise ValueError(f"time_grid: num_steps must be a positive integer, got {num_steps!r}")
    k = int(num_steps)
    if spacing not in SPACINGS:
        raise ValueError(f"time_grid: unknown spacing={spacing!r}; choose one of {SPACINGS}")
    if spacing in ("trailing", "leading"):
        n_train = schedule.num_train_steps
        if n_train is None:
            raise ValueError(
                f"time_grid: spacing={spacing!r} needs a discrete schedule with num_train_steps "
                f"(e.g. VPSchedule.linear()), got {schedule!r}"
            )
        if k > n_train:
            raise ValueError(f"time_grid: num_steps={k} exceeds num_train_steps={n_train}")
        if spacing == "trailing":
            n = np.round(np.arange(n_train, 0, -n_train / k)).astype(np.int64) - 1
        else:
            n = (np.arange(k) * (n_train // k))[::-1]
        return np.concatenate([(n[:k] + 1.0) / n_train, [0.0]])

    t_max = float(schedule.t_max if t_max is None else t_max)
    t_min = float(schedule.t_min if t_min is None else t_min)
    if not 0.0 <= t_min < t_max <= 1.0:
        raise ValueError(
            f"time_grid: need 0 <= t_min < t_max <= 1, got t_min={t_min}, t_max={t_max}"
        )
    append_zero = final_denoise and t_min > 0.0
    n_pts = k if append_zero else k + 1
    u = np.linspace(0.0, 1.0, n_pts) if n_pts > 1 else np.zeros(1)
    if spacing == "time_uniform":
        t = t_max + (t_min - t_max) * u
    elif spacing == "quadratic":
        t = t_min + (t_max - t_min) * (1.0 - u) ** 2
    else:  # log_snr
        lam_ends = schedule.numpy(np.array([t_max, t_min]))["log_snr"]
        if not np.all(np.isfinite(lam_ends)):
            raise ValueError(
                f"time_grid: spacing='log_snr' needs finite log-SNR at t_max={t_max} and "
                f"t_min={t_min} for {schedule!r}; pick t_max < 1 / t_min > 0 or another spacing"
            )
        t = np.array(schedule.t_from_log_snr_numpy(lam_ends[0] + (lam_ends[1] - lam_ends[0]) * u))
        t[0] = t_max
        t[-1] = t_min if n_pts > 1 else t_max
    if append_zero:
        t = np.concatenate([t, [0.0]])
    return t.astype(np.float64)
