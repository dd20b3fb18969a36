"""Figures of the evaluation: histograms, redshift-binned means, sample grids, colour–redshift,
radial profiles and pixel histograms."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

_LABELS = {
    "semi_major_axis": "semi-major axis [px]",
    "sersic_index": "Sérsic index",
    "isophotal_area": "isophotal area [px²]",
    "ellipticity": "ellipticity",
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def histograms(ref: dict, gens: dict[str, dict], stats, path: Path) -> None:
    """One panel per statistic: real vs every generated set on the metric's shared bin edges."""
    import morph_metrics as mm

    plt = _plt()
    fig, axes = plt.subplots(1, len(stats), figsize=(4 * len(stats), 3.2))
    for ax, s in zip(np.atleast_1d(axes), stats):
        edges = mm.default_edges(s)
        styles = {"real": {"color": "0.7"}} | {name: {"histtype": "step"} for name in gens}
        for name, d in {"real": ref, **gens}.items():
            vals = d[s][np.isfinite(d[s])]
            if vals.size:  # a set with every stamp flagged has no histogram
                ax.hist(vals, bins=edges, density=True, label=name, **styles[name])
        ax.set_xlabel(_LABELS.get(s, s))
    np.atleast_1d(axes)[0].legend(fontsize=7)
    _save(fig, path)


def binned_means(ref: dict, gens: dict[str, dict], stats, path: Path, edges=None) -> None:
    """Mean of each statistic in redshift bins (default: the BCD's, ``morph_metrics.BCD_EDGES``)
    with standard errors."""
    import morph_metrics as mm

    plt = _plt()
    edges = mm.BCD_EDGES if edges is None else np.asarray(edges)
    centers = 0.5 * (edges[1:] + edges[:-1])
    fig, axes = plt.subplots(1, len(stats), figsize=(4 * len(stats), 3.2))
    for ax, s in zip(np.atleast_1d(axes), stats):
        for name, cols in {"real": ref, **gens}.items():
            m, e = _binned(cols["redshift"], cols[s], edges)
            ax.errorbar(
                centers,
                m,
                yerr=e,
                marker="o",
                ms=3,
                capsize=2,
                label=name,
                color="k" if name == "real" else None,
            )
        ax.set_xlabel("redshift")
        ax.set_ylabel(_LABELS.get(s, s))
    np.atleast_1d(axes)[0].legend(fontsize=7)
    _save(fig, path)


def _binned(z, v, edges):
    idx = np.clip(np.digitize(z, edges) - 1, 0, len(edges) - 2)
    ok = np.isfinite(v) & np.isfinite(z)
    m = np.full(len(edges) - 1, np.nan)
    e = np.full(len(edges) - 1, np.nan)
    for b in range(len(edges) - 1):
        x = v[ok & (idx == b)]
        if x.size:
            m[b] = x.mean()
            e[b] = x.std() / np.sqrt(x.size)
    return m, e


def sample_grid(
    real: Path,
    gens: dict[str, Path],
    path: Path,
    per_bin: int = 1,
    z_edges=None,
) -> None:
    """Rows: real and each method; columns: redshift bins (default: the colour bins,
    ``morph_metrics.COLOUR_Z_EDGES``). g-r-i composite, arcsinh stretch."""
    import morph_metrics as mm
    from galaxiesml_data import open_split

    z_edges = mm.COLOUR_Z_EDGES if z_edges is None else np.asarray(z_edges)
    plt = _plt()
    sets = {"real": real, **gens}
    n_cols = len(z_edges) - 1
    fig, axes = plt.subplots(
        len(sets), n_cols, figsize=(1.6 * n_cols, 1.6 * len(sets)), squeeze=False
    )
    for r, (name, f) in enumerate(sets.items()):
        ds = open_split(f)
        z = np.asarray(ds.redshift[:])
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            sel = np.flatnonzero((z >= z_edges[c]) & (z < z_edges[c + 1]))
            if sel.size:
                ax.imshow(_rgb(np.asarray(ds.images[int(sel[0])])))
            if r == 0:
                ax.set_title(f"{z_edges[c]:g}≤z<{z_edges[c + 1]:g}", fontsize=7)
            if c == 0:
                ax.set_ylabel("\n".join(textwrap.wrap(name, 16)), fontsize=7)
    _save(fig, path)


def _rgb(img: np.ndarray) -> np.ndarray:
    """(H, W, 5) flux -> (H, W, 3) in [0, 1]: i, r, g as R, G, B with an arcsinh stretch."""
    x = np.arcsinh(np.stack([img[..., 2], img[..., 1], img[..., 0]], -1) / 0.1)
    lo, hi = np.nanpercentile(x, 1), np.nanpercentile(x, 99.5)
    return np.clip((x - lo) / max(hi - lo, 1e-6), 0, 1)


def _save(fig, path: Path) -> None:
    from galgen._io import atomic_write

    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)


def colour_redshift(ref: dict, gens: dict[str, dict], colours, path: Path, edges=None) -> None:
    """One panel per colour: median and 16–84 % band vs redshift, real (grey band) and each method."""
    import morph_metrics as mm

    plt = _plt()
    edges = mm.BCD_EDGES if edges is None else np.asarray(edges)
    centers = 0.5 * (edges[1:] + edges[:-1])
    fig, axes = plt.subplots(1, len(colours), figsize=(3.6 * len(colours), 3.2), squeeze=False)
    for ax, c in zip(axes[0], colours):
        for name, d in {"real": ref, **gens}.items():
            lo, med, hi = mm.binned_quantiles(d["redshift"], d[c], edges)
            if name == "real":
                ax.fill_between(centers, lo, hi, color="0.8", label="real 16–84 %")
                ax.plot(centers, med, "k-o", ms=3, label="real median")
            else:
                (ln,) = ax.plot(centers, med, "-o", ms=3, label=name)
                ax.plot(centers, lo, ":", color=ln.get_color(), lw=0.8)
                ax.plot(centers, hi, ":", color=ln.get_color(), lw=0.8)
        ax.set_xlabel("redshift")
        ax.set_ylabel(f"{c} [mag]")
    axes[0, 0].legend(fontsize=6)
    _save(fig, path)


def radial_profiles(ref: dict, gens: dict[str, dict], edges, sky, bands, path: Path) -> None:
    """Median azimuthal profile per band in units of the real sky σ (symlog), real vs methods."""
    plt = _plt()
    r = 0.5 * (np.asarray(edges)[1:] + np.asarray(edges)[:-1])
    fig, axes = plt.subplots(1, len(bands), figsize=(3.2 * len(bands), 3.0), squeeze=False)
    for k, (ax, b) in enumerate(zip(axes[0], bands)):
        for name, d in {"real": ref, **gens}.items():
            prof = np.nanmedian(d["profile"][:, :, k], axis=0) / sky[k]
            ax.plot(
                r, prof, "k-" if name == "real" else "-", lw=2 if name == "real" else 1, label=name
            )
        ax.set_yscale("symlog", linthresh=1.0)
        ax.axhline(0, color="0.6", lw=0.5)
        ax.set_xlabel("radius [px]")
        ax.set_title(f"band {b}", fontsize=8)
    axes[0, 0].set_ylabel("median flux / real sky σ")
    axes[0, 0].legend(fontsize=6)
    _save(fig, path)


def pixel_histograms(ref: dict, gens: dict[str, dict], edges, bands, path: Path) -> None:
    """Pixel-value distributions per band in asinh(pixel / real sky σ), log density."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(bands), figsize=(3.2 * len(bands), 3.0), squeeze=False)
    for k, (ax, b) in enumerate(zip(axes[0], bands)):
        for name, d in {"real": ref, **gens}.items():
            h = d["pixhist"][k] / max(d["pixhist"][k].sum(), 1)
            ax.stairs(
                h,
                edges,
                color="k" if name == "real" else None,
                lw=2 if name == "real" else 1,
                label=name,
            )
        ax.set_yscale("log")
        ax.set_xlabel("asinh(pixel / real sky σ)")
        ax.set_title(f"band {b}", fontsize=8)
    axes[0, 0].set_ylabel("fraction of pixels")
    axes[0, 0].legend(fontsize=6)
    _save(fig, path)
