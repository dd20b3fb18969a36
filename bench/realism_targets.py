"""Issue #17's realism targets, checked against the tables ``galgen evaluate`` wrote.

Reads EVAL_DIR/{table1,photometry,imagestats,photoz}.json and prints, per target, the measured
numbers and whether the target is met. The colour-cast criterion counts only redshift bins with
at least 10 galaxies; the counts come from the first N redshifts of the test file.

    .venv/bin/python bench/realism_targets.py out/cpu/eval --test out/cpu/data/5x32x32_testing_with_morphology.hdf5
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

MORPH = ("semi_major_axis", "sersic_index", "isophotal_area", "ellipticity")
COLOURS = ("g-r", "r-i", "i-z", "z-y")
DDPM, DPM2M, DEIS, PMF1, PMF2 = "DDPM-1000", "DPM++2M", "DEIS-AB2", "p-MF 1-step", "p-MF 2-step"
SOLVERS = ("DDIM (η=0)", DEIS, DPM2M, "DPM++2S")


def jsd_table(eval_dir: Path) -> tuple[dict, dict, dict]:
    """label -> stat -> JSD (bits), -> JSD / floor and -> (JSD, bootstrap std), for the four
    morphology statistics and the four colours."""
    t1 = json.loads((eval_dir / "table1.json").read_text())
    ph = json.loads((eval_dir / "photometry.json").read_text())
    jsd, ratio, err = {}, {}, {}
    for label in t1["rows"]:
        err[label] = {s: t1["rows"][label]["jsd"][s][::2] for s in MORPH}
        err[label].update({c: ph["rows"][label]["jsd"][c][::2] for c in COLOURS})
        jsd[label] = {k: v[0] for k, v in err[label].items()}
        if label in t1["ratio_to_floor"]:
            ratio[label] = {s: t1["ratio_to_floor"][label]["jsd"][s] for s in MORPH}
            ratio[label].update({c: ph["ratio_to_floor"][label]["jsd"][c] for c in COLOURS})
    return jsd, ratio, err


def bin_counts(test: Path | None, n: int, edges: list[float]) -> list[int] | None:
    if test is None:
        return None
    import h5py

    with h5py.File(test, "r") as f:
        z = np.asarray(f["specz_redshift"][:n])
    return [int(((z >= a) & (z < b)).sum()) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("eval_dir", type=Path)
    ap.add_argument("--test", type=Path, help="test HDF5 (redshift-bin counts for the colour cast)")
    a = ap.parse_args()
    jsd, ratio, err = jsd_table(a.eval_dir)
    ims = json.loads((a.eval_dir / "imagestats.json").read_text())
    pz = json.loads((a.eval_dir / "photoz.json").read_text())["rows"]
    edges = ims["colour_z_edges"]
    n = json.loads((a.eval_dir / "table1.json").read_text())["n_real"]
    counts = bin_counts(a.test, n, edges)
    use = [c >= 10 for c in counts] if counts else [True] * (len(edges) - 1)
    print(f"redshift bins {edges}: galaxies {counts} (bins with >= 10 count)")

    def worst(label: str, keys) -> str:
        return ", ".join(f"{k} {ratio[label][k]:.2f}" for k in keys)

    for label, lim in ((DDPM, 2.0), (PMF1, 3.0)):
        bad = [k for k in ratio[label] if ratio[label][k] > lim]
        print(f"- {label} every JSD <= {lim}x floor: {'met' if not bad else 'MISSED'} "
              f"({worst(label, ratio[label])})")  # fmt: skip
    for label in (DPM2M, DEIS):
        r = {k: jsd[label][k] / jsd[DDPM][k] for k in jsd[DDPM]}
        bad = [k for k, v in r.items() if v > 1.5]
        txt = ", ".join(f"{k} {v:.2f}" for k, v in r.items())
        print(f"- {label} each JSD <= 1.5x DDPM-1000's: {'met' if not bad else 'MISSED'} ({txt})")
    for label in (DDPM, *SOLVERS, PMF1, PMF2):
        offs = ims["rows"][label]["colour_offset"]
        worst_off = max(
            (abs(v), c, i) for c in COLOURS for i, v in enumerate(offs[c]) if use[i] and v == v
        )
        ok = worst_off[0] <= 0.1
        i = worst_off[2]
        print(f"- {label} colour cast (|median offset| <= 0.1 mag): {'met' if ok else 'MISSED'} "
              f"(worst {worst_off[1]} {offs[worst_off[1]][i]:+.3f} at z {edges[i]}-{edges[i + 1]})")  # fmt: skip
    # "no worse": the 2-step JSD exceeds the 1-step one by no more than their combined
    # bootstrap error
    for label in (PMF2,):
        worse = {
            k: (err[label][k][0] - err[PMF1][k][0]) / np.hypot(err[label][k][1], err[PMF1][k][1])
            for k in err[PMF1]
        }
        bad = [k for k, v in worse.items() if v > 1.0]
        txt = ", ".join(f"{k} {jsd[label][k] / jsd[PMF1][k]:.2f}" for k in worse)
        print(f"- {label} no worse than 1 step (JSD ratio 2-step / 1-step; worse = more than the "
              f"combined bootstrap error): {'met' if not bad else 'MISSED on ' + ', '.join(bad)} "
              f"({txt})")  # fmt: skip
    real = pz["real test"]
    for label in (DDPM, PMF1):
        nm, out = pz[label]["nmad"] / real["nmad"], pz[label]["outlier_rate"] / real["outlier_rate"]
        ok = nm <= 1.5 and out <= 2.0
        print(f"- {label} photo-z NMAD <= 1.5x and outliers <= 2x real: {'met' if ok else 'MISSED'} "
              f"(NMAD {pz[label]['nmad']:.4f} = {nm:.2f}x, outliers {pz[label]['outlier_rate']:.3f}"
              f" = {out:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
