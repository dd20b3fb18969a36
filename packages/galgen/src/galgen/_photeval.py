"""The astronomer's half of ``galgen evaluate``: photometry, image statistics, photo-z, the floor.

Composes morph-metrics (``photometry``, ``sky_noise``, ``border_excess``, ``radial_profile``,
``pixel_histogram``, ``compare_columns``/``real_floor``, ``PhotoZ``) on GalaxiesML-schema files;
owns no science. Settings derived from the real test stamps (fixed for every set compared):

- aperture radius = stamp size / 4 px (8 px = 1.3″ on 32-px stamps, 16 px on 64-px stamps);
- sky border width = max(1, size // 8) px;
- asinh softening per band = Lupton's 1.042 σ_aperture from the real stamps' median sky σ;
- pixel histograms in asinh(pixel / real sky σ).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from galgen._io import read_cache, write_cache

#: At most this many training galaxies feed the photo-z (the first ones of the training file).
PHOTOZ_MAX_TRAIN = 50_000
#: Edges of the pixel histograms in asinh(pixel / real sky σ).
HIST_EDGES = np.linspace(-4.0, 10.0, 71)
COLOUR_BIN_LABELS = ("0–0.5", "0.5–1", "1–2", "2–4")
FLOOR = "real vs real"


def settings(real: Path, n: int) -> dict[str, Any]:
    """Aperture, border and softening from the first ``n`` real stamps."""
    import morph_metrics as mm
    from galaxiesml_data import BANDS, ZERO_POINT, open_split

    ds = open_split(real)
    size = ds.height
    width = max(1, size // 8)
    sky = np.median(mm.sky_noise(np.asarray(ds.images[: min(n, 4096)]), width), axis=0)
    radius = size / 4.0
    return {
        "size": int(size),
        "radius": radius,
        "border": width,
        "sky": sky.tolist(),
        "softening": mm.softening_from_sky(sky, radius).tolist(),
        "zero_point": ZERO_POINT,
        "bands": list(BANDS),
        "profile_edges": np.arange(0.0, size / 2.0 + 1e-9, 1.0).tolist(),
    }


def photometry_of(images: np.ndarray, st: dict[str, Any]) -> dict[str, np.ndarray]:
    """``morph_metrics.photometry`` columns (each ``(N,)``) of linear-flux stamps ``(N, H, W, C)``
    with the aperture, softening, zero point and bands of :func:`settings` ``st``."""
    import morph_metrics as mm

    return mm.photometry(
        images, st["radius"], np.asarray(st["softening"]), zero_point=st["zero_point"],
        bands=st["bands"],
    )  # fmt: skip


def colour_array(images: np.ndarray, st: dict[str, Any]) -> np.ndarray:
    """Adjacent aperture colours ``(N, C - 1)`` (asinh mag; g−r, r−i, … in band order) of
    linear-flux stamps ``(N, H, W, C)``, measured as ``galgen evaluate`` measures them."""
    import morph_metrics as mm

    cols = photometry_of(images, st)
    return np.stack([cols[c] for c in mm.colour_names(st["bands"])], axis=1)


def _key(path: Path, idx: np.ndarray, st: dict[str, Any]) -> str:
    from galgen._study import file_digest

    h = hashlib.sha256(json.dumps(st, sort_keys=True).encode())
    h.update(np.ascontiguousarray(idx, np.int64).tobytes())
    return f"{file_digest(path)[:16]}-phot-{h.hexdigest()[:16]}.npz"


def summarize(
    path: Path, st: dict[str, Any], cache: Path, idx: np.ndarray | None = None, chunk: int = 2048
) -> dict[str, np.ndarray]:
    """Photometry columns, per-stamp sky σ ``sky (N, C)``, per-stamp outer-ring median ``ring (N, C)``, radial
    profiles ``profile (N, R, C)``, pixel histogram ``pixhist (C, B)`` and ``redshift`` of the
    galaxies ``idx`` (default all) of ``path``; cached in ``cache`` by file hash and settings."""
    import morph_metrics as mm
    from galaxiesml_data import open_split

    ds = open_split(path)
    idx = np.arange(len(ds)) if idx is None else np.asarray(idx, np.int64)
    cache.mkdir(parents=True, exist_ok=True)
    hit = cache / _key(path, idx, st)
    if (cached := read_cache(hit)) is not None:
        return cached
    parts: list[dict[str, np.ndarray]] = []
    for i in range(0, idx.size, chunk):
        sel = idx[i : i + chunk]
        order = np.argsort(sel)
        x = np.empty((sel.size, *ds.images.shape[1:]), np.float32)
        x[order] = ds.images[sel[order]]  # read in increasing index order
        cols = photometry_of(x, st)
        cols["sky"] = mm.sky_noise(x, st["border"])
        cols["ring"] = mm.border_level(x)
        cols["profile"] = mm.radial_profile(x, np.asarray(st["profile_edges"]))[0]
        cols["pixhist"] = mm.pixel_histogram(x, HIST_EDGES, np.asarray(st["sky"]))[None]
        parts.append(cols)
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    out["pixhist"] = out["pixhist"].sum(axis=0)
    out["redshift"] = np.asarray(ds.redshift[:], np.float64)[idx]
    write_cache(hit, out)
    return out


def floor_indices(real: Path, n: int) -> tuple[Path, np.ndarray]:
    """The second real sample: the split (validation, else training when validation holds fewer
    than ``n`` galaxies) next to ``real`` and the indices of its galaxies nearest in redshift to
    the first ``n`` real ones, without replacement."""
    import morph_metrics as mm
    from galaxiesml_data import find_split, open_split

    from galgen._errors import GalgenError

    ds = open_split(real)
    z = np.asarray(ds.redshift[:n], np.float64)
    data = Path(real).parent
    for split in ("validation", "training"):
        try:
            p = find_split(data, split, size=ds.height)
        except (FileNotFoundError, ValueError):
            continue
        if p.resolve() == Path(real).resolve():
            continue
        pool = np.asarray(open_split(p).redshift[:], np.float64)
        if pool.size >= z.size:
            return p, mm.match_redshifts(z, pool)
    raise GalgenError(
        f"no validation or training split with at least {z.size} galaxies next to {real} "
        "for the real-vs-real floor"
    )


def photometry_stats(bands: Sequence[str]) -> list[str]:
    import morph_metrics as mm

    return [f"flux_{b}" for b in bands] + [f"mag_{b}" for b in bands] + mm.colour_names(bands)


def photometry_table(
    ref: dict, gens: dict[str, dict], floor2: dict, n_boot: int, seed: int, bands: Sequence[str]
) -> dict[str, Any]:
    """JSD and BCD per photometry column for the floor and each method, and ratios to the floor."""
    import morph_metrics as mm

    stats = photometry_stats(bands)
    n = len(ref["redshift"])
    edges = {s: mm.column_edges(s, ref[s]) for s in stats}
    kw = dict(edges=edges, n_boot=n_boot, seed=seed)
    rows = {FLOOR: mm.real_floor(ref, floor2, ref["redshift"], stats, **kw)}
    for lab, g in gens.items():
        m = len(g["redshift"])
        r = {s: ref[s][:m] for s in stats}
        rows[lab] = mm.compare_columns(r, g, ref["redshift"][:m], stats, **kw)
    ratios = {lab: mm.floor_ratio(res, rows[FLOOR]) for lab, res in rows.items()}
    return {
        "stats": stats,
        "n_real": n,
        "bcd_units": {s: mm.bcd_units(s) for s in stats},
        "rows": rows,
        "ratio_to_floor": ratios,
    }


def photometry_markdown(t: dict[str, Any]) -> str:
    import morph_metrics as mm

    stats = t["stats"]
    head = "| Method | " + " | ".join(stats) + " |\n|" + "---|" * (1 + len(stats))
    out = []
    for metric, title in (("jsd", "JSD (bits)"), ("bcd", "BCD")):
        dec = 4 if metric == "jsd" else 3
        out += [f"**{title}** (bootstrap error)\n", head]
        for lab, res in t["rows"].items():
            cells = [
                mm.format_value(res[metric][s][0], res[metric][s][2], decimals=dec) for s in stats
            ]
            out.append(f"| {lab} | " + " | ".join(cells) + " |")
        out += ["", f"**{title} / real-vs-real floor**\n", head]
        for lab, r in t["ratio_to_floor"].items():
            if lab != FLOOR:
                out.append(f"| {lab} | " + " | ".join(f"{r[metric][s]:.2f}" for s in stats) + " |")
        out.append("")
    out.append(
        "Flux BCD is normalized as in Table 1; magnitude and colour BCD are Σ over redshift bins "
        "of |Δ mean| in mag. Flux JSD bins: 50 equal-count bins of the real fluxes."
    )
    return "\n".join(out) + "\n"


def _ring_mean(s: dict) -> np.ndarray:
    return np.median(s["ring"], axis=0)


def imagestats_table(
    ref: dict, gens: dict[str, dict], floor2: dict, st: dict[str, Any]
) -> dict[str, Any]:
    """Per set and band: sky σ ratio (median gen / median real), border excess in real sky σ, and
    the median colour offset (gen − real) per redshift bin [0,0.5), [0.5,1), [1,2), [2,4]."""
    import morph_metrics as mm

    sky_real = np.median(ref["sky"], axis=0)
    ring_real = _ring_mean(ref)
    rows = {}
    for lab, g in {FLOOR: floor2, **gens}.items():
        m = len(g["redshift"])
        offsets = {
            c: mm.binned_median_offset(ref["redshift"][:m], ref[c][:m], g[c]).tolist()
            for c in mm.colour_names(st["bands"])
        }
        rows[lab] = {
            "sky_ratio": (np.median(g["sky"], axis=0) / sky_real).tolist(),
            "border_excess": ((_ring_mean(g) - ring_real) / sky_real).tolist(),
            "colour_offset": offsets,
        }
    return {
        "bands": st["bands"],
        "real_sky_sigma": sky_real.tolist(),
        "colour_z_edges": mm.COLOUR_Z_EDGES.tolist(),
        "rows": rows,
    }


def imagestats_markdown(t: dict[str, Any]) -> str:
    bands = t["bands"]
    cols = [f"sky σ ratio {b}" for b in bands] + [f"border excess {b}" for b in bands]
    lines = [
        "**Sky noise and border** (sky σ ratio = median robust σ of the border, generated / real; "
        "border excess = median level of the outermost pixel ring minus real, in real sky σ)\n",
        "| Method | " + " | ".join(cols) + " |",
        "|" + "---|" * (1 + len(cols)),
    ]
    for lab, r in t["rows"].items():
        cells = [f"{v:.2f}" for v in r["sky_ratio"]] + [f"{v:+.2f}" for v in r["border_excess"]]
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    colours = list(next(iter(t["rows"].values()))["colour_offset"])
    ccols = [f"{c} z {b}" for c in colours for b in COLOUR_BIN_LABELS]
    lines += [
        "",
        "**Median colour offset, generated − real (mag), per redshift bin**\n",
        "| Method | " + " | ".join(ccols) + " |",
        "|" + "---|" * (1 + len(ccols)),
    ]
    for lab, r in t["rows"].items():
        cells = [f"{v:+.3f}" for c in colours for v in r["colour_offset"][c]]
        lines.append(f"| {lab} | " + " | ".join(cells).replace("+nan", "—") + " |")
    return "\n".join(lines) + "\n"


def photoz_estimator(train: Path, st: dict[str, Any], cache: Path, seed: int):
    """A :class:`morph_metrics.PhotoZ` fitted on (at most ``PHOTOZ_MAX_TRAIN``) training galaxies.

    The training features and redshifts are cached as ``.npz`` keyed by the training file's hash
    (via :func:`summarize`); the fit itself is deterministic and is redone each time (seconds),
    so no pickled model is ever loaded."""
    import morph_metrics as mm
    from galaxiesml_data import open_split

    n = min(len(open_split(train)), PHOTOZ_MAX_TRAIN)
    s = summarize(train, st, cache, idx=np.arange(n))
    return mm.PhotoZ(seed=seed).fit(mm.photoz_features(s, st["bands"]), s["redshift"])


def photoz_table(pz, ref: dict, gens: dict[str, dict], bands: Sequence[str]) -> dict[str, Any]:
    """NMAD, bias, outlier rate of the photo-z against the true (real test) or conditioning
    (generated) redshifts."""
    import morph_metrics as mm

    rows = {}
    for lab, s in {"real test": ref, **gens}.items():
        pred = pz.predict(mm.photoz_features(s, bands))
        rows[lab] = mm.photoz_metrics(s["redshift"], pred)
    return {"outlier_threshold": mm.OUTLIER_THRESHOLD, "rows": rows}


def photoz_markdown(t: dict[str, Any]) -> str:
    lines = [
        "| Set | NMAD Δz/(1+z) | bias (median) | outlier rate (\\|Δz\\|/(1+z) > "
        f"{t['outlier_threshold']}) | N |",
        "|---|---|---|---|---|",
    ]
    for lab, r in t["rows"].items():
        lines.append(
            f"| {lab} | {r['nmad']:.4f} | {r['bias']:+.4f} | {r['outlier_rate']:.3f} | {r['n']} |"
        )
    return "\n".join(lines) + "\n"
