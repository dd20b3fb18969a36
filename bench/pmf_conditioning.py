"""How much a trained network's output depends on its conditioning inputs.

For each run directory or model file: the network's output at one fixed noise input
(8 stamps, t = 1, r = 0, z = 0.3, w = 1) against the output after changing one input — the
redshift to 3, the guidance scale to 7, the times to (t, r) = (0.5, 0.5) — as a fraction of its
norm. A net that ignores its redshift draws the same galaxies at every z (bench/band_offsets.py).

    .venv/bin/python bench/pmf_conditioning.py out/cpu/runs/pmf out/cpu/runs/pmf-p_mf_tiny_huber_nls
"""

from __future__ import annotations

import argparse

import galgen
import jax
import jax.numpy as jnp


def sensitivity(run: str) -> dict[str, float]:
    sim = galgen.Simulator.load(run)
    params, apply = sim._params, sim._net.apply
    size, chans = sim.config["image_size"], sim.config["channels"]
    x = jax.random.normal(jax.random.key(0), (8, size, size, chans))
    one, keep = jnp.ones(8), jnp.zeros(8, bool)

    def out(z=0.3, w=1.0, t=1.0, r=0.0):
        return apply(params, x, t * one, r * one, w * one, z * one, keep)

    base = out()
    rel = lambda y: float(jnp.linalg.norm(y - base) / jnp.linalg.norm(base))  # noqa: E731
    return {
        "z 0.3->3": rel(out(z=3.0)),
        "w 1->7": rel(out(w=7.0)),
        "t,r ->0.5": rel(out(0.3, 1.0, 0.5, 0.5)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    for run in ap.parse_args().runs:
        s = sensitivity(run)
        print(run + ": " + ", ".join(f"{k} {100 * v:.1f} %" for k, v in s.items()))


if __name__ == "__main__":
    main()
