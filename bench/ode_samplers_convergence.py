"""Error vs NFE of every deterministic ode-samplers method on exact-score problems (float64).

    JAX_PLATFORMS=cpu uv run python bench/ode_samplers_convergence.py

Prints, per problem, the max-abs error of the final sample against the exact PF-ODE solution
(denoised at t_min, as the sampler's final step does) at NFE 10/20/40/80 and the fitted slope of
log(error) vs log(NFE). VPSchedule.linear (1000 steps), eps prediction; Euler/Heun also on the
FlowSchedule with the exact velocity.
"""

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
from ode_samplers import FlowSchedule, VPSchedule  # noqa: E402
from ode_samplers.testing import GaussianData, GaussianMixture1D, error_vs_nfe  # noqa: E402

NFES = (10, 20, 40, 80)
METHODS = [
    ("ddim", {}),
    ("euler", {}),
    ("deis", {"order": 1}),
    ("dpmpp_2m", {}),
    ("dpmpp_2s", {}),
    ("deis", {"order": 2}),
    ("heun", {}),
    ("deis", {"order": 3}),
]


def table(title, rows):
    print(f"\n### {title}\n")
    print("| method | spacing | NFE | err@10 | err@20 | err@40 | err@80 | slope |")
    print("|---|---|---|---|---|---|---|---|")
    for name, spacing, nfes, errs, slope in rows:
        cells = " | ".join(f"{e:.2e}" for e in errs)
        print(f"| {name} | {spacing} | {'/'.join(map(str, nfes))} | {cells} | {slope:.2f} |")


def main():
    vp = VPSchedule.linear()
    problems = {
        "Gaussian N(0.3, 0.5^2), 16x3 samples": (
            GaussianData(0.3, 0.5),
            jax.random.normal(jax.random.key(0), (16, 3), jnp.float64),
        ),
        "1-D mixture 0.3 N(-1, 0.3^2) + 0.7 N(0.8, 0.5^2), 24 noise values in [-2.5, 2.5]": (
            GaussianMixture1D(),
            jnp.linspace(-2.5, 2.5, 24, dtype=jnp.float64)[:, None],
        ),
    }
    for title, (problem, noise) in problems.items():
        rows = []
        for spacing in ("time_uniform", "quadratic", "log_snr"):
            for method, kw in METHODS:
                name = method + (f"-{kw['order']}" if "order" in kw else "")
                res = error_vs_nfe(problem, vp, noise, method, NFES, spacing=spacing, **kw)
                rows.append((name, spacing, *res))
        table(f"VPSchedule.linear, eps prediction — {title}", rows)
    noise = jax.random.normal(jax.random.key(1), (16, 3), jnp.float64)
    rows = []
    for method in ("euler", "heun"):
        for pred in ("flow", "x0"):
            res = error_vs_nfe(
                GaussianData(0.3, 0.5), FlowSchedule(), noise, method, NFES, prediction=pred
            )
            rows.append((f"{method} ({pred})", "time_uniform", *res))
    table("FlowSchedule (t: 1 -> 0), exact Gaussian velocity", rows)


if __name__ == "__main__":
    main()
