"""Which pMF variant trains better? Algorithm 1 vs the official pixel-MeanFlow variant on the
2-D two-mode toy of the tests (small MLP, diffusion_core engine, Adam 1e-3, EMA 0.99), judged on
ONE-step samples at w = 1 over several seeds.

    JAX_PLATFORMS=cpu .venv/bin/python bench/meanflow_variants.py --steps 1000 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "packages/meanflow/tests"))
from meanflow import PMFConfig, pmf_loss, sample  # noqa: E402
from mf_toy import MODE_STD, MODES, mlp_apply, mlp_init, train_engine  # noqa: E402


def evaluate(params, cfg, n=4000):
    """Mean over the two conditions of: |sample mean - μ|, sample std / true std, right-mode
    fraction, and the sliced 1-Wasserstein distance to fresh data (64 directions)."""
    noise = jax.random.normal(jax.random.key(123), (n, 1, 1, 2))
    rng = np.random.default_rng(99)
    dirs = rng.standard_normal((64, 2))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    out = []
    for z, mu in MODES.items():
        other = next(m for k, m in MODES.items() if k != z)
        x = np.asarray(sample(mlp_apply, params, noise, jnp.full((n,), z), config=cfg)).reshape(
            n, 2
        )
        ref = mu + MODE_STD * rng.standard_normal((n, 2))
        sw = np.mean([np.mean(np.abs(np.sort(x @ d) - np.sort(ref @ d))) for d in dirs])
        right = np.linalg.norm(x - mu, axis=1) < np.linalg.norm(x - other, axis=1)
        out.append([np.linalg.norm(x.mean(0) - mu), x.std(0).mean() / MODE_STD, right.mean(), sw])
    return np.mean(out, axis=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    a = ap.parse_args()
    rows = {}
    for variant in ("algorithm1", "official"):
        cfg = PMFConfig(variant=variant)
        res, t0 = [], time.perf_counter()
        for seed in a.seeds:
            with tempfile.TemporaryDirectory() as d:
                params = train_engine(
                    pmf_loss(mlp_apply, cfg), mlp_init(jax.random.key(seed)), a.steps, d, seed=seed
                )
            res.append(evaluate(params, cfg))
        rows[variant] = (np.mean(res, 0), np.std(res, 0), (time.perf_counter() - t0) / len(a.seeds))
    print(f"steps={a.steps} seeds={a.seeds} (mean ± std over seeds; one-step samples, w = 1)")
    print("| variant | mean error | std / true std | right mode | sliced W1 | s per run |")
    print("|---|---|---|---|---|---|")
    for v, (m, s, t) in rows.items():
        cells = " | ".join(f"{mi:.3f} ± {si:.3f}" for mi, si in zip(m, s))
        print(f"| {v} | {cells} | {t:.1f} |")


if __name__ == "__main__":
    main()
