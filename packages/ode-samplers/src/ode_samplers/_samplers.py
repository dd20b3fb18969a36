"""Diffusion / flow samplers as one `lax.scan` over precomputed per-step coefficients.

Notation: a step goes from time t (alpha a, sigma s, log-SNR lam) to t' (a', s', lam'),
h = lam' - lam > 0, rho = s / a. Every update is written with a, s of the exact times passed to
the model, so `schedule.alpha(t)`, `schedule.sigma(t)` on the model's t reproduce them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ._custom_types import Array, FlowMapFn, ModelFn, Schedule, _check_schedule
from ._grid import time_grid

METHODS = ("ddpm", "ddim", "dpmpp_2m", "dpmpp_2s", "deis", "euler", "heun", "mean_flow")
PREDICTIONS = ("eps", "x0", "v", "flow")
VARIANCES = ("small", "large")
_TWO_EVAL = ("dpmpp_2s", "heun")


def nfe(method: str, num_steps: int, *, final_denoise_step: bool = True) -> int:
    """Model evaluations of a `num_steps`-step run; the final denoise step costs one."""
    if method in _TWO_EVAL:
        return 2 * num_steps - (1 if final_denoise_step else 0)
    return num_steps


def _convert(out, x, a, s, ad, sd, prediction):
    """Model output -> (x0_hat, eps_hat). a, s, ad, sd: alpha, sigma and their t-derivatives."""
    if prediction == "eps":
        return (x - s * out) / a, out
    if prediction == "x0":
        return out, (x - a * out) / s
    if prediction == "v":  # v = a * eps - s * x0
        n = a * a + s * s
        return (a * x - s * out) / n, (s * x + a * out) / n
    det = a * sd - s * ad  # flow: out = ad * x0 + sd * eps
    return (sd * x - s * out) / det, (a * out - ad * x) / det


class _Points:
    """alpha, sigma, log-SNR (+ t-derivatives) at times cast to the model's dtype (float64 NumPy)."""

    def __init__(self, schedule, times, dtype):
        self.t_model = np.asarray(times, np.float64).astype(dtype)
        with np.errstate(invalid="ignore", divide="ignore"):  # derivatives at t = 0 are unused
            v = schedule.numpy(self.t_model.astype(np.float64))
        self.a, self.s, self.lam = v["alpha"], v["sigma"], v["log_snr"]
        self.ad, self.sd = v["alpha_dot"], v["sigma_dot"]


def _check_finite(name, values, method, what):
    if not np.all(np.isfinite(values)):
        raise ValueError(
            f"sample: method={method!r} needs a finite {what} at every model-evaluation time; "
            f"got {name} = {values} (use t_max < 1 with FlowSchedule, or another method)"
        )


def _explicit_grid(times, num_steps):
    """`times` as a float64 NumPy grid t_0 > ... > t_K in [0, 1], K >= 1, consistent with
    `num_steps` (None or K); ValueError naming `times` otherwise."""
    try:
        g = np.asarray(times, np.float64)
    except (TypeError, ValueError) as e:  # incl. a traced grid (TracerArrayConversionError)
        raise ValueError(
            f"sample: times must be a concrete 1-D sequence of floats (the grid is fixed on the "
            f"host, not traced), got {times!r}"
        ) from e
    with np.errstate(invalid="ignore"):
        bad = (
            g.ndim != 1
            or g.size < 2
            or not np.all(np.isfinite(g))
            or np.any(np.diff(g) >= 0)
            or g[0] > 1.0
            or g[-1] < 0.0
        )
    if bad:
        raise ValueError(
            "sample: times must be a strictly decreasing 1-D grid t_0 > ... > t_K within [0, 1] "
            f"with at least 2 points (K >= 1 steps), got times={g.tolist()}"
        )
    k = g.size - 1
    if num_steps is not None and (int(num_steps) != num_steps or int(num_steps) != k):
        raise ValueError(
            f"sample: num_steps={num_steps!r} disagrees with times={g.tolist()} ({g.size} points "
            f"= {k} steps); pass num_steps=None (or {k}) with an explicit times grid"
        )
    return g


def sample(
    model_fn: ModelFn | FlowMapFn,
    noise: Array,
    *,
    schedule: Schedule,
    method: str,
    num_steps: int | None = None,
    prediction: str = "eps",
    key: Array | None = None,
    spacing: str | None = None,
    t_max: float | None = None,
    t_min: float | None = None,
    final_denoise: bool = True,
    eta: float = 0.0,
    variance: str = "small",
    order: int = 2,
    r: float = 0.5,
    return_nfe: bool = False,
    clip_x0: tuple[float, float] | None = None,
    times: Array | np.ndarray | list[float] | None = None,
):
    """Integrate from `noise` (at t_max, or times[0]) to data with `method`; returns x (noise's shape/dtype).

    model_fn(x, t) -> prediction, x (B, ...), t (B,) in noise's float dtype (float32 for float32
    images). prediction: 'eps', 'x0', 'v' (= alpha eps - sigma x0) or 'flow' (dx/dt along the
    schedule's path). method:

    - 'ddpm': ancestral sampling; variance 'small' (posterior, beta-tilde) or 'large' (beta).
    - 'ddim': DDIM with `eta` (0 = deterministic PF-ODE, 1 = DDPM 'small').
    - 'dpmpp_2m': DPM-Solver++(2M), first step first order (`order=1`: first-order DPM++).
    - 'dpmpp_2s': DPM-Solver++(2S), intermediate point at lam + r h (2 evaluations per step).
    - 'deis': DEIS Adams-Bashforth of `order` 1, 2 or 3 in rho = sigma/alpha, exact Lagrange
      integrals, lower-order warm-up.
    - 'euler', 'heun': integrate in the schedule's `ode_space` ('rho' for VPSchedule: the EDM
      samplers on x/alpha; 't' for FlowSchedule: the usual flow-matching samplers).
    - 'mean_flow': few-step flow-map models (MeanFlow / pixel MeanFlow): model_fn(x, t, r) (an
      `ode_samplers.FlowMapFn`; t, r (B,) in noise's float dtype) is called once per step
      t_i -> t_{i+1} with r = t_{i+1} (r = 0 on a final step to t = 0), and the step is the
      deterministic DDIM step (eta 0) from t to r of its prediction: x_r = alpha(r) x0 +
      sigma(r) eps. On FlowSchedule with prediction='flow' the prediction is the average
      velocity u over [r, t] and the step is exactly x_r = x - (t - r) u (one step from
      t = 1: x = noise - u(noise, 1, 0)); with clip_x0 it is x_r = x0 + (r / t)(x - x0) for the
      clipped x0 = clip(x - t u). NFE = num_steps. (The model's r is not the 'dpmpp_2s' option
      `r`.) The other methods call model_fn(x, t).

    The grid is `time_grid(schedule, num_steps, spacing, t_max, t_min, final_denoise)`, or
    `times` when given: an explicit strictly decreasing grid t_0 > ... > t_K within [0, 1]
    (K >= 1; concrete floats, e.g. a list or NumPy array) that replaces it for every method.
    With `times`, `num_steps` may be None (it is then len(times) - 1) or must equal
    len(times) - 1; `spacing`, `t_max` and `t_min` must be left None, and `final_denoise` is
    not read: the last step is a final denoise step iff times[-1] == 0. Default
    spacing: 'time_uniform' for 'ddpm' (1000 steps = the discrete DDPM timesteps) and for
    FlowSchedule, 'quadratic' otherwise (the most accurate of the three on the exact-score
    benchmarks at 10-80 NFE, see the README). A final
    step to t = 0 is first order for every method (it returns the x0 estimate). `key` is needed
    for 'ddpm' and for 'ddim' with eta > 0: one key (``jax.random.key(seed)``), or one per row
    of `noise` (shape (B,)), which makes each row's path depend on its own key alone, so the
    same row comes out whatever batch it is sampled in. `clip_x0=(lo, hi)` clips every x0 estimate to the
    data range and recomputes eps from it (DDPM's "clip denoised"; keeps an imperfect eps model
    from diverging); None (default) leaves the solver exact. NFE (model calls) is `num_steps` for single-evaluation
    methods and 2 * num_steps (- 1 when the last step goes to t = 0) for 'heun'/'dpmpp_2s';
    `return_nfe=True` returns (x, nfe). Jit-able (the loop is one `lax.scan`) and vmappable.
    """
    _check_schedule(schedule, "sample")
    if times is not None:
        grid = _explicit_grid(times, num_steps)
        given = {"spacing": spacing, "t_max": t_max, "t_min": t_min}
        clash = {k: v for k, v in given.items() if v is not None}
        if clash:
            raise ValueError(
                f"sample: an explicit times grid replaces spacing / t_max / t_min; got times="
                f"{grid.tolist()} with {', '.join(f'{k}={v!r}' for k, v in clash.items())}"
            )
    elif num_steps is None:
        raise ValueError("sample: pass num_steps (or an explicit times grid)")
    if method not in METHODS:
        raise ValueError(f"sample: unknown method={method!r}; choose one of {METHODS}")
    if prediction not in PREDICTIONS:
        raise ValueError(f"sample: unknown prediction={prediction!r}; choose one of {PREDICTIONS}")
    if method == "ddpm" and variance not in VARIANCES:
        raise ValueError(f"sample: unknown variance={variance!r}; choose one of {VARIANCES}")
    if method == "dpmpp_2m" and order not in (1, 2):
        raise ValueError(f"sample: method='dpmpp_2m' supports order 1 or 2, got order={order!r}")
    if method == "deis" and order not in (1, 2, 3):
        raise ValueError(f"sample: method='deis' supports order 1, 2 or 3, got order={order!r}")
    if method == "dpmpp_2s" and not 0.0 < r < 1.0:
        raise ValueError(f"sample: method='dpmpp_2s' needs 0 < r < 1, got r={r!r}")
    if method == "ddim" and eta < 0:
        raise ValueError(f"sample: method='ddim' needs eta >= 0, got eta={eta!r}")
    stochastic = method == "ddpm" or (method == "ddim" and eta > 0)
    if stochastic and key is None:
        raise ValueError(
            f"sample: method={method!r}"
            + (f" with eta={eta}" if method == "ddim" else "")
            + " is stochastic and needs key=jax.random.key(seed)"
        )
    noise = jnp.asarray(noise)
    if noise.ndim < 1:
        raise ValueError(f"sample: noise must have a leading batch axis, got shape {noise.shape}")
    if not jnp.issubdtype(noise.dtype, jnp.floating):
        noise = noise.astype(jnp.float32)
    dtype = noise.dtype if noise.dtype in (jnp.float32, jnp.float64) else jnp.dtype(jnp.float32)

    if times is None:
        if spacing is None:
            uniform = method == "ddpm" or schedule.ode_space == "t"
            spacing = "time_uniform" if uniform else "quadratic"
        grid = time_grid(schedule, num_steps, spacing, t_max, t_min, final_denoise)
    p = _Points(schedule, grid, dtype)
    if prediction == "eps" and np.any(p.a[:-1] <= 0):  # x0 = (x - sigma eps) / alpha is 0 / 0
        raise ValueError(
            f"sample: method={method!r} with prediction='eps' cannot recover the clean image "
            f"where alpha(t) = 0 "
            f"(t = {float(grid[0]):g} on {schedule!r}); pass t_max < 1, or a model predicting "
            "'x0', 'v' or 'flow'"
        )
    k_steps = len(grid) - 1
    denoise_last = bool(grid[-1] == 0.0)
    n_reg = k_steps - 1 if denoise_last else k_steps
    xs = _coefficients(schedule, method, p, n_reg, dtype, eta, variance, order, r)

    def evaluate(x, t, a, s, ad, sd, t_next=None):
        tb = jnp.full((x.shape[0],), t, dtype)
        if method == "mean_flow":  # a flow-map model also gets the step's end time r
            out = model_fn(x, tb, jnp.full((x.shape[0],), t_next, dtype))
        else:
            out = model_fn(x, tb)
        if jnp.shape(out) != x.shape:
            raise ValueError(
                f"sample: model_fn returned shape {jnp.shape(out)}, expected {x.shape}"
            )
        x0, eps = _convert(jnp.asarray(out, x.dtype), x, a, s, ad, sd, prediction)
        if clip_x0 is not None:  # sigma > 0 at every model-evaluation time
            x0 = jnp.clip(x0, clip_x0[0], clip_x0[1])
            eps = (x - a * x0) / s
        return x0, eps

    x = noise.astype(dtype)
    if n_reg > 0:
        opts = {"eta": eta, "space_t": schedule.ode_space == "t"}
        body, carry = _BODIES[method](evaluate, x, opts)
        if stochastic:
            if _per_row(key, x.shape[0]):  # (n_reg, B): row b's step keys from its own key
                xs["key"] = jax.vmap(lambda k: jax.random.split(k, n_reg), out_axes=1)(key)
            else:
                xs["key"] = jax.random.split(key, n_reg)
        xs = {k: v if k == "key" else jnp.asarray(v, dtype) for k, v in xs.items()}
        carry, _ = jax.lax.scan(body, carry, xs)
        x = carry[0]
    if denoise_last:
        i = n_reg
        pts = (p.t_model, p.a, p.s, p.ad, p.sd)
        x, _ = evaluate(x, *(jnp.asarray(v[i], dtype) for v in pts), p.t_model[i + 1])
    x = x.astype(noise.dtype)
    if return_nfe:
        return x, nfe(method, k_steps, final_denoise_step=denoise_last)
    return x


def _coefficients(schedule, method, p, n, dtype, eta, variance, order, r):
    """Per-step arrays (length n, float64 NumPy) for the scan over the n regular steps."""
    i0, i1 = np.arange(n), np.arange(1, n + 1)
    a0, s0, a1, s1 = p.a[i0], p.s[i0], p.a[i1], p.s[i1]
    xs = {
        "t": p.t_model[i0],
        "a": a0,
        "s": s0,
        "ad": p.ad[i0],
        "sd": p.sd[i0],
    }
    # Variance of x_t given x_t' (t > t'), and the DDPM posterior variance of x_t' given x_t, x0.
    var_step = np.maximum(s0**2 - (a0 / a1) ** 2 * s1**2, 0.0)
    var_post = var_step * s1**2 / s0**2
    if method == "ddpm":
        xs["cx"] = (a0 / a1) * s1**2 / s0**2
        xs["c0"] = a1 * var_step / s0**2
        xs["std"] = np.sqrt(var_post if variance == "small" else var_step)
    elif method == "ddim":
        std = eta * np.sqrt(var_post)
        xs.update(a1=a1, c_eps=np.sqrt(np.maximum(s1**2 - std**2, 0.0)), std=std)
    elif method == "mean_flow":  # DDIM eta = 0 to r = t_{i+1}, which the model also receives
        xs.update(r=p.t_model[i1], a1=a1, s1=s1)
    elif method == "dpmpp_2m":
        h = p.lam[i1] - p.lam[i0]
        h_prev = np.concatenate([[np.inf], h[:-1]])
        with np.errstate(invalid="ignore"):
            d = np.where(np.isfinite(h_prev) & (order == 2), h / (2.0 * h_prev), 0.0)
        xs.update(A=s1 / s0, B=a1 - a0 * s1 / s0, D=d)
    elif method == "dpmpp_2s":
        _check_finite("log-SNR", p.lam[: n + 1], method, "log-SNR")
        h = p.lam[i1] - p.lam[i0]
        lam_mid = p.lam[i0] + r * h
        grid_mid = schedule.t_from_log_snr_numpy(lam_mid)
        m = _Points(schedule, grid_mid, dtype)
        with np.errstate(divide="ignore", invalid="ignore"):
            r_actual = (m.lam - p.lam[i0]) / h
        xs.update(
            tm=m.t_model, am=m.a, sm=m.s, adm=m.ad, sdm=m.sd,
            Am=m.s / s0, Bm=m.a - a0 * m.s / s0,
            A=s1 / s0, B=a1 - a0 * s1 / s0, C=1.0 / (2.0 * r_actual),
        )  # fmt: skip
    elif method == "deis":
        with np.errstate(divide="ignore"):
            rho = p.s[: n + 1] / p.a[: n + 1]
        _check_finite("rho = sigma/alpha", rho, method, "sigma/alpha")
        xs.update(a1=a1, **_ab_coefficients(rho, order))
    elif method in ("euler", "heun"):
        if schedule.ode_space == "rho":
            with np.errstate(divide="ignore"):
                u = p.s / p.a
            _check_finite("rho = sigma/alpha", u[: n + 1], method, "sigma/alpha")
            m = p.a
        else:
            u, m = p.t_model.astype(np.float64), np.ones_like(p.a)
        xs.update(
            du=u[i1] - u[i0], m=m[i0], m1=m[i1],
            t1=p.t_model[i1], a1=a1, s1=s1, ad1=p.ad[i1], sd1=p.sd[i1],
        )  # fmt: skip
    return xs


def _ab_coefficients(rho, order):
    """Adams-Bashforth weights c_j = int_{rho_k}^{rho_k+1} l_j for eps at rho_k, rho_k-1, rho_k-2.

    Exact integrals of the Lagrange basis, in u = rho - rho_k so that all terms are step-sized.
    Step k uses order min(order, k + 1) (warm-up).
    """
    n = len(rho) - 1
    k = np.arange(n)
    big_h = rho[1:] - rho[:-1]
    prev1 = np.concatenate([[np.nan], rho[:-2]])  # rho_{k-1}
    prev2 = np.concatenate([[np.nan, np.nan], rho[:-3]])[:n]  # rho_{k-2}
    b = prev1 - rho[:-1]
    c = prev2 - rho[:-1]
    h = big_h
    zero = np.zeros(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        o2 = ((h**2 / 2 - b * h) / (-b), h**2 / (2 * b), zero)
        o3 = (
            (h**3 / 3 - (b + c) * h**2 / 2 + b * c * h) / (b * c),
            (h**3 / 3 - c * h**2 / 2) / (b * (b - c)),
            (h**3 / 3 - b * h**2 / 2) / (c * (c - b)),
        )
    eff = np.minimum(order, k + 1)
    out = {}
    for j, name in enumerate(("c0", "c1", "c2")):
        o1j = h if j == 0 else zero
        out[name] = np.where(eff == 1, o1j, np.where(eff == 2, o2[j], o3[j]))
    return out


def _per_row(key: Array, batch: int) -> bool:
    """Whether ``key`` is one key per row of a batch of ``batch`` (typed ``(B,)`` or raw
    ``(B, 2)``) rather than one key for the whole batch (typed ``()`` or raw ``(2,)``)."""
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    ndim = key.ndim - (0 if typed else 1)
    if ndim == 0:
        return False
    if ndim != 1 or key.shape[0] != batch:
        raise ValueError(
            f"sample: key must be one key or one key per row of noise ({batch}), got a key "
            f"array of shape {key.shape}"
        )
    return True


def _noise(z, key):
    if _per_row(key, z.shape[0]):  # row b's noise from its own key: independent of the batching
        return jax.vmap(lambda k: jax.random.normal(k, z.shape[1:], z.dtype))(key)
    return jax.random.normal(key, z.shape, z.dtype)


def _ddpm(evaluate, x, opts):
    def body(carry, c):
        (x,) = carry
        x0, _ = evaluate(x, c["t"], c["a"], c["s"], c["ad"], c["sd"])
        x = c["cx"] * x + c["c0"] * x0 + c["std"] * _noise(x, c["key"])
        return (x,), None

    return body, (x,)


def _ddim(evaluate, x, opts):
    def body(carry, c):
        (x,) = carry
        x0, eps = evaluate(x, c["t"], c["a"], c["s"], c["ad"], c["sd"])
        x_new = c["a1"] * x0 + c["c_eps"] * eps
        if opts["eta"] > 0:
            x_new = x_new + c["std"] * _noise(x, c["key"])
        return (x_new,), None

    return body, (x,)


def _mean_flow(evaluate, x, opts):
    def body(carry, c):
        (x,) = carry
        x0, eps = evaluate(x, c["t"], c["a"], c["s"], c["ad"], c["sd"], c["r"])
        return (c["a1"] * x0 + c["s1"] * eps,), None

    return body, (x,)


def _dpmpp_2m(evaluate, x, opts):
    def body(carry, c):
        x, x0_prev = carry
        x0, _ = evaluate(x, c["t"], c["a"], c["s"], c["ad"], c["sd"])
        d = x0 + c["D"] * (x0 - x0_prev)
        return (c["A"] * x + c["B"] * d, x0), None

    return body, (x, jnp.zeros_like(x))


def _dpmpp_2s(evaluate, x, opts):
    def body(carry, c):
        (x,) = carry
        x0, _ = evaluate(x, c["t"], c["a"], c["s"], c["ad"], c["sd"])
        xm = c["Am"] * x + c["Bm"] * x0
        x0m, _ = evaluate(xm, c["tm"], c["am"], c["sm"], c["adm"], c["sdm"])
        d = x0 + c["C"] * (x0m - x0)
        return (c["A"] * x + c["B"] * d,), None

    return body, (x,)


def _deis(evaluate, x, opts):
    def body(carry, c):
        x, e1, e2 = carry
        _, eps = evaluate(x, c["t"], c["a"], c["s"], c["ad"], c["sd"])
        y = x / c["a"] + c["c0"] * eps + c["c1"] * e1 + c["c2"] * e2
        return (c["a1"] * y, eps, e1), None

    return body, (x, jnp.zeros_like(x), jnp.zeros_like(x))


def _derivative(x0, eps, space_t, ad, sd):
    """dy/du: eps in rho-space, the velocity ad*x0 + sd*eps in t-space."""
    return ad * x0 + sd * eps if space_t else eps


def _euler(evaluate, x, opts):
    def body(carry, c):
        (x,) = carry
        x0, eps = evaluate(x, c["t"], c["a"], c["s"], c["ad"], c["sd"])
        d = _derivative(x0, eps, opts["space_t"], c["ad"], c["sd"])
        return (c["m1"] * (x / c["m"] + c["du"] * d),), None

    return body, (x,)


def _heun(evaluate, x, opts):
    def body(carry, c):
        (x,) = carry
        x0, eps = evaluate(x, c["t"], c["a"], c["s"], c["ad"], c["sd"])
        d1 = _derivative(x0, eps, opts["space_t"], c["ad"], c["sd"])
        y = x / c["m"]
        x_pred = c["m1"] * (y + c["du"] * d1)
        x0p, epsp = evaluate(x_pred, c["t1"], c["a1"], c["s1"], c["ad1"], c["sd1"])
        d2 = _derivative(x0p, epsp, opts["space_t"], c["ad1"], c["sd1"])
        return (c["m1"] * (y + c["du"] * 0.5 * (d1 + d2)),), None

    return body, (x,)


_BODIES = {
    "ddpm": _ddpm,
    "ddim": _ddim,
    "dpmpp_2m": _dpmpp_2m,
    "dpmpp_2s": _dpmpp_2s,
    "deis": _deis,
    "euler": _euler,
    "heun": _heun,
    "mean_flow": _mean_flow,
}
