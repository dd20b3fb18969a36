"""A GalSim-rendered synthetic galaxy population written in the GalaxiesML schema.

Every galaxy ``i`` of split ``s`` is a pure function of ``(seed, s, i, size, also_127)``: its
parameters and noise come from ``numpy.random.default_rng([seed, s, i])``, so the output does not
depend on how the work is split over processes.

Rendering: the bulge (Sérsic n≈2.5–5) and disk (n=1) — and an occasional companion — are each
drawn ONCE by GalSim without a PSF (3× oversampled then binned, i.e. pixel-integrated), then every
band is ``irfft2((f_bulge,b · B̂ + f_disk,b · D̂) · P̂_b)`` with P̂_b the band's Moffat PSF, so a galaxy
costs 2–3 GalSim draws and a few 2-D FFTs. Unit-flux Sérsic profiles are cached on an n-grid of 0.1.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import lru_cache
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm.auto import tqdm

from ._schema import BANDS, IMAGE_KEY, PIXEL_SCALE, SPLITS, ZERO_POINT, file_name

__all__ = ["synthesize", "PSF_FWHM", "DEPTH_5SIGMA", "sky_sigma", "sample_galaxy"]

PSF_FWHM: dict[str, float] = {"g": 0.77, "r": 0.76, "i": 0.58, "z": 0.68, "y": 0.68}
"""Moffat PSF FWHM per band in arcsec (HSC PDR2 Wide median seeing)."""
MOFFAT_BETA = 3.5
DEPTH_5SIGMA: dict[str, float] = {"g": 26.5, "r": 26.1, "i": 25.9, "z": 25.1, "y": 24.4}
"""5σ point-source depth per band (AB mag, HSC Wide), which sets the Gaussian sky noise."""
LAMBDA_EFF: dict[str, float] = {"g": 4754.0, "r": 6175.0, "i": 7711.0, "z": 8898.0, "y": 9762.0}
"""Effective wavelength of each band in Å."""
LAMBDA_REF = 7700.0  # rest-frame wavelength (Å) at which absolute magnitude and B/T are defined
N_GRID = 0.1  # Sérsic indices are rounded to this grid so profiles can be cached
DETECT_SIGMA = 1.5  # isophote threshold in units of the band's sky sigma (SExtractor DETECT_THRESH)
H0, OMEGA_M = 70.0, 0.3
C_KM_S = 299792.458

# --------------------------------------------------------------------------------------- physics

_ZT = np.linspace(0.0, 4.5, 4501)
_EZ = np.sqrt(OMEGA_M * (1 + _ZT) ** 3 + 1 - OMEGA_M)
_DC = (
    np.concatenate([[0.0], np.cumsum(0.5 * (1 / _EZ[1:] + 1 / _EZ[:-1]) * np.diff(_ZT))])
    * C_KM_S
    / H0
)


def comoving_distance_mpc(z: float) -> float:
    """Flat ΛCDM (H0=70, Ωm=0.3) comoving distance in Mpc."""
    return float(np.interp(z, _ZT, _DC))


def sky_sigma(band: str) -> float:
    """Per-pixel Gaussian sky σ (flux units, ZP 27) giving the band's 5σ point-source depth.

    ``σ = F_5 / (5 sqrt(A))`` with ``A = 4π σ_psf²`` the noise-equivalent area of the PSF in pixels.
    """
    f5 = 10 ** (-0.4 * (DEPTH_5SIGMA[band] - ZERO_POINT))
    sig_psf = PSF_FWHM[band] / PIXEL_SCALE / 2.3548
    return f5 / (5 * math.sqrt(4 * math.pi * sig_psf**2))


def sed(lam_rest: np.ndarray, kind: str) -> np.ndarray:
    """Toy f_ν SEDs: a red bulge (steep, strong 4000 Å break) and a bluer disk; Lyman cut at 1216 Å."""
    lam = np.asarray(lam_rest, dtype=np.float64)
    slope, brk = (2.0, 0.45) if kind == "bulge" else (1.0, 0.85)
    s = (lam / 5000.0) ** slope
    s = np.where(lam < 4000.0, s * brk, s)
    return np.where(lam < 1216.0, s * 0.05, s)


def sample_galaxy(rng: np.random.Generator) -> dict[str, Any]:
    """Draw one galaxy's physical and observed parameters (lengths in px, fluxes with ZP 27)."""
    # Redshift: a bulk below z≈1.5 with a tail to 4, like GalaxiesML.
    while True:
        z = rng.gamma(2.2, 0.28) if rng.random() < 0.88 else 1.2 + rng.exponential(0.7)
        if 0.01 <= z <= 4.0:
            break
    dc = comoving_distance_mpc(z)
    d_l, d_a = (
        dc * (1 + z),
        dc / (1 + z),
    )  # D_L = (1+z)² D_A gives (1+z)^-4 surface-brightness dimming
    dist_mod = 5 * math.log10(d_l * 1e5)
    m_abs = rng.normal(-20.9 - 0.7 * z, 0.9)
    # Apparent magnitude at rest-frame LAMBDA_REF, within spectroscopic-sample limits. No bandwidth
    # term: with sizes from D_A, the surface brightness dims exactly as (1+z)^-4.
    m_ref = float(np.clip(m_abs + dist_mod, 16.0, 24.5))
    m_abs = m_ref - dist_mod
    f_ref = 10 ** (-0.4 * (m_ref - ZERO_POINT))
    # Structure: bulge fraction falls with z, sizes shrink as (1+z)^-1.
    mu_bt = 0.45 / (1 + z) ** 0.8
    bt = float(rng.beta(4 * mu_bt, 4 * (1 - mu_bt)))
    r_disk_kpc = 4.5 * 10 ** (-0.08 * (m_abs + 21)) / (1 + z) * 10 ** rng.normal(0, 0.15)
    r_bulge_kpc = r_disk_kpc * 10 ** rng.normal(math.log10(0.35), 0.1)
    kpc_to_px = 206264.8 / (d_a * 1e3) / PIXEL_SCALE
    lam = np.array([LAMBDA_EFF[b] for b in BANDS]) / (1 + z)
    f_bulge = f_ref * bt * sed(lam, "bulge") / sed(np.array(LAMBDA_REF), "bulge")
    f_disk = f_ref * (1 - bt) * sed(lam, "disk") / sed(np.array(LAMBDA_REF), "disk")
    g = {
        "z": float(z),
        "abs_mag": float(m_abs),
        "ref_flux": float(f_ref),
        "bulge_fraction": bt,
        "bulge_n": round(float(rng.uniform(2.5, 5.0)) / N_GRID) * N_GRID,
        "disk_n": 1.0,
        "disk_hlr_kpc": float(r_disk_kpc),
        "disk_hlr": float(np.clip(r_disk_kpc * kpc_to_px, 0.4, 25.0)),
        "bulge_hlr": float(np.clip(r_bulge_kpc * kpc_to_px, 0.3, 12.0)),
        "disk_q": float(rng.uniform(0.2, 1.0)),
        "bulge_q": float(rng.uniform(0.6, 1.0)),
        "pos_angle": float(rng.uniform(0.0, 180.0)),
        "dx": float(rng.uniform(-0.5, 0.5)),
        "dy": float(rng.uniform(-0.5, 0.5)),
        "f_bulge": f_bulge,
        "f_disk": f_disk,
        "companion": bool(rng.random() < 0.25),
    }
    # Always draw the companion's numbers so the stream does not depend on the coin above.
    c_dmag, c_hlr, c_q = rng.uniform(1.0, 3.5), rng.uniform(0.5, 3.0), rng.uniform(0.3, 1.0)
    c_r, c_phi, c_beta = rng.uniform(8.0, 24.0), rng.uniform(0, 2 * math.pi), rng.uniform(0, 180)
    c_flux = f_ref * 10 ** (-0.4 * c_dmag) * sed(lam, "disk") / sed(np.array(LAMBDA_REF), "disk")
    g.update(
        c_hlr=c_hlr, c_q=c_q, c_beta=c_beta, c_x=c_r * math.cos(c_phi), c_y=c_r * math.sin(c_phi)
    )
    g["f_comp"] = c_flux if g["companion"] else np.zeros(len(BANDS))
    return g


# ------------------------------------------------------------------------------------ rendering

_OVERSAMPLE = 3


@lru_cache(maxsize=128)
def _unit_sersic(n: float) -> Any:
    import galsim

    return galsim.Sersic(n=n, half_light_radius=1.0)


def _pad_size(size: int) -> int:
    return size + 32


@lru_cache(maxsize=8)
def _psf_fft(p: int) -> np.ndarray:
    """rfft2 of each band's unit-sum Moffat kernel, centred on pixel (0, 0): ``(5, p, p//2+1)``."""
    import galsim

    off = 0.5 if p % 2 == 0 else 0.0
    ker = []
    for b in BANDS:
        im = galsim.Moffat(beta=MOFFAT_BETA, fwhm=PSF_FWHM[b]).drawImage(
            nx=p, ny=p, scale=PIXEL_SCALE, method="no_pixel", offset=(off, off)
        )
        a = im.array.astype(np.float64)
        ker.append(np.fft.ifftshift(a / a.sum()))
    return np.fft.rfft2(np.stack(ker))


def _draw(prof: Any, p: int, dx: float, dy: float, o: int = _OVERSAMPLE) -> np.ndarray:
    """Pixel-integrated (``o``× oversampled, binned) unit-flux image ``(p, p)`` of a profile, no PSF."""
    im = prof.drawImage(
        nx=p * o, ny=p * o, scale=PIXEL_SCALE / o, method="no_pixel", offset=(dx * o, dy * o)
    ).array
    return im.reshape(p, o, p, o).sum(axis=(1, 3))


def _component(n: float, hlr: float, q: float, beta_deg: float) -> Any:
    import galsim

    return (
        _unit_sersic(round(n / N_GRID) * N_GRID)
        .dilate(hlr * PIXEL_SCALE)
        .shear(q=q, beta=beta_deg * galsim.degrees)
    )


def render_galaxy(g: dict[str, Any], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free ``(primary, companion)`` images, each ``(5, size, size)`` float64, PSF-convolved."""
    p = _pad_size(size)
    kp = _psf_fft(p)
    # Oversample where pixel integration matters: compact or cuspy (n≈4) profiles.
    o_b = _OVERSAMPLE if g["bulge_hlr"] < 6.0 else 1
    o_d = _OVERSAMPLE if g["disk_hlr"] < 2.0 else 1
    bulge = _draw(
        _component(g["bulge_n"], g["bulge_hlr"], g["bulge_q"], g["pos_angle"]),
        p,
        g["dx"],
        g["dy"],
        o_b,
    )
    disk = _draw(
        _component(g["disk_n"], g["disk_hlr"], g["disk_q"], g["pos_angle"]),
        p,
        g["dx"],
        g["dy"],
        o_d,
    )
    fb, fd = np.fft.rfft2(bulge), np.fft.rfft2(disk)
    spec = g["f_bulge"][:, None, None] * fb + g["f_disk"][:, None, None] * fd
    s0 = (p - size) // 2
    crop = (slice(None), slice(s0, s0 + size), slice(s0, s0 + size))
    primary = np.fft.irfft2(spec * kp, s=(p, p))[crop]
    if g["companion"]:
        comp = _draw(
            _component(1.0, g["c_hlr"], g["c_q"], g["c_beta"]),
            p,
            g["dx"] + g["c_x"],
            g["dy"] + g["c_y"],
            1,
        )
        companion = np.fft.irfft2(g["f_comp"][:, None, None] * np.fft.rfft2(comp) * kp, s=(p, p))[
            crop
        ]
    else:
        companion = np.zeros_like(primary)
    return primary, companion


# ---------------------------------------------------------------------------------- measurement


def measure_model(
    model: np.ndarray, cx: float, cy: float, sigma: np.ndarray
) -> dict[str, np.ndarray]:
    """SExtractor-like per-band quantities of a noise-free ``(5, S, S)`` model centred at (cx, cy) px.

    Isophote: pixels above ``1.5 σ_sky`` (else the pixels above half the peak); A, B, θ from the
    flux-weighted second moments inside it (SExtractor A_IMAGE, B_IMAGE, THETA_IMAGE, degrees
    counter-clockwise from +x); half-light radius: circle around (cx, cy) holding half the stamp
    flux; Petrosian radius: first radius where ring/mean-inside surface brightness < 0.2;
    peak surface brightness: ``27 - 2.5 log10(peak / 0.168²)`` mag/arcsec².
    """
    nb, s, _ = model.shape
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)
    out: dict[str, list[float]] = {k: [] for k in ("a", "b", "theta", "area", "hlr", "petro", "mu")}
    r = np.hypot(xx - cx, yy - cy).ravel()
    order = np.argsort(r, kind="stable")
    r_sorted = r[order]
    ring = np.rint(r).astype(np.int64)
    count = np.bincount(ring)
    for k in range(nb):
        m = model[k]
        peak = float(m.max())
        mask = m > DETECT_SIGMA * sigma[k]
        if mask.sum() < 3:
            mask = m >= 0.5 * peak
        w = np.where(mask, m, 0.0)
        tot = w.sum()
        x0, y0 = (w * xx).sum() / tot, (w * yy).sum() / tot
        x2 = (w * (xx - x0) ** 2).sum() / tot + 1 / 12
        y2 = (w * (yy - y0) ** 2).sum() / tot + 1 / 12
        xy = (w * (xx - x0) * (yy - y0)).sum() / tot
        c = math.sqrt(((x2 - y2) / 2) ** 2 + xy**2)
        out["a"].append(math.sqrt((x2 + y2) / 2 + c))
        out["b"].append(math.sqrt(max((x2 + y2) / 2 - c, 0.0)))
        out["theta"].append(math.degrees(0.5 * math.atan2(2 * xy, x2 - y2)))
        out["area"].append(float(mask.sum()))
        cum = np.cumsum(m.ravel()[order])
        out["hlr"].append(
            float(np.interp(0.5 * cum[-1], cum, r_sorted)) if cum[-1] > 0 else float("nan")
        )
        ring_sum = np.bincount(ring, weights=m.ravel())
        mean_in = np.cumsum(ring_sum) / np.maximum(np.cumsum(count), 1)
        ratio = (ring_sum / np.maximum(count, 1)) / np.where(mean_in > 0, mean_in, np.inf)
        below = np.flatnonzero((ratio < 0.2) & (np.arange(ratio.size) > 0))
        if below.size:
            j = below[0]
            t = (ratio[j - 1] - 0.2) / max(ratio[j - 1] - ratio[j], 1e-12)
            out["petro"].append(float(j - 1 + min(max(t, 0.0), 1.0)))
        else:
            out["petro"].append(float(ring.max()))
        out["mu"].append(ZERO_POINT - 2.5 * math.log10(max(peak, 1e-30) / PIXEL_SCALE**2))
    return {k: np.asarray(v) for k, v in out.items()}


# ------------------------------------------------------------------------------------ one chunk

_SPLIT_OFFSET = 10**14  # object_id = 43_000_000_000_000_000 + split * 1e14 + index (unique, int64)
_ID_BASE = 43_000_000_000_000_000


def _galaxy_rows(seed: int, split: int, i: int, size: int, big: int | None) -> tuple:
    rng = np.random.default_rng([int(seed), int(split), int(i)])
    g = sample_galaxy(rng)
    sig = np.array([sky_sigma(b) for b in BANDS])
    render = big or size
    primary, companion = render_galaxy(g, render)
    noisy = primary + companion + rng.normal(size=primary.shape) * sig[:, None, None]
    s0 = (render - size) // 2
    img = noisy[:, s0 : s0 + size, s0 : s0 + size].astype(np.float32)
    prim = primary[:, s0 : s0 + size, s0 : s0 + size]
    # Galaxy centre in the saved stamp (0-indexed px): centre of the padded render + sub-pixel jitter.
    p = _pad_size(render)
    c = (p - 1) / 2 - (p - render) // 2 - s0
    cx, cy = c + g["dx"], c + g["dy"]
    meas = measure_model(prim, cx, cy, sig)
    ra = float(rng.uniform(0.0, 360.0))
    dec = float(np.degrees(np.arcsin(rng.uniform(-0.3, 0.9))))
    flux = g["f_bulge"] + g["f_disk"]
    with np.errstate(divide="ignore"):
        mag = ZERO_POINT - 2.5 * np.log10(flux)
    aper = np.maximum(
        meas["area"], math.pi * (2 * np.array([PSF_FWHM[b] for b in BANDS]) / PIXEL_SCALE) ** 2
    )
    col: dict[str, Any] = {
        "object_id": _ID_BASE + split * _SPLIT_OFFSET + i,
        "specz_redshift": g["z"],
        "specz_redshift_err": float(rng.uniform(1e-5, 2e-3) * (1 + g["z"])),
        "specz_flag_homogeneous": True,
        "specz_mag_i": float(mag[2]),
        "specz_name": f"SYNTH-{split}-{i:09d}".encode(),
        "specz_ra": ra,
        "specz_dec": dec,
        "ra": ra,
        "dec": dec,
        "coord": f"{ra:.6f} {dec:.6f}".encode(),
        "skymap_id": 10000 + (i % 9000),
        "x_coord": cx,
        "y_coord": cy,
    }
    for k, b in enumerate(BANDS):
        col[f"{b}_cmodel_mag"] = float(mag[k])
        col[f"{b}_cmodel_magsigma"] = float(1.0857 * sig[k] * math.sqrt(aper[k]) / flux[k])
        col[f"{b}_ellipticity"] = 1.0 - meas["b"][k] / meas["a"][k]
        col[f"{b}_major_axis"] = meas["a"][k]
        col[f"{b}_minor_axis"] = meas["b"][k]
        col[f"{b}_pos_angle"] = meas["theta"][k]
        col[f"{b}_isophotal_area"] = meas["area"][k]
        col[f"{b}_half_light_radius"] = meas["hlr"][k]
        bt_b = g["f_bulge"][k] / flux[k]
        col[f"{b}_sersic_index"] = bt_b * g["bulge_n"] + (1 - bt_b) * g["disk_n"]
        col[f"{b}_petro_rad"] = meas["petro"][k]
        col[f"{b}_peak_surface_brightness"] = meas["mu"][k]
        col[f"truth_{b}_flux"] = float(flux[k])
        col[f"truth_{b}_bulge_flux"] = float(g["f_bulge"][k])
        col[f"truth_{b}_disk_flux"] = float(g["f_disk"][k])
        col[f"truth_{b}_companion_flux"] = float(g["f_comp"][k])
        col[f"truth_{b}_psf_fwhm"] = PSF_FWHM[b]
        col[f"truth_{b}_sky_sigma"] = float(sig[k])
    for k in ("bulge_n", "disk_n", "bulge_hlr", "disk_hlr", "bulge_q", "disk_q", "pos_angle"):
        col[f"truth_{k}"] = g[k]
    col["truth_bulge_fraction"] = g["bulge_fraction"]
    col["truth_abs_mag"] = g["abs_mag"]
    col["truth_ref_flux"] = g["ref_flux"]
    col["truth_disk_hlr_kpc"] = g["disk_hlr_kpc"]
    col["truth_has_companion"] = g["companion"]
    big_img = noisy.astype(np.float32) if big else None
    return img, big_img, col


def _render_chunk(task: tuple[int, int, int, int, int, int | None]) -> tuple:
    seed, split, lo, hi, size, big = task
    rows = [_galaxy_rows(seed, split, i, size, big) for i in range(lo, hi)]
    imgs = np.stack([r[0] for r in rows])
    bigs = np.stack([r[1] for r in rows]) if big else None
    cols = {k: np.array([r[2][k] for r in rows]) for k in rows[0][2]}
    return split, lo, imgs, bigs, cols


# ---------------------------------------------------------------------------------- public entry


_GUARD = (
    "synthesize(workers > 1) starts worker processes that re-import your script; call it under "
    'if __name__ == "__main__": (or pass workers=1)'
)


def _in_spawned_import() -> bool:
    """True while a spawned child re-imports the parent's ``__main__`` (an unguarded script)."""
    main = sys.modules.get("__main__")
    return mp.parent_process() is not None and getattr(main, "__name__", "") == "__mp_main__"


def synthesize(
    out_dir: str | Path,
    n_train: int,
    n_val: int,
    n_test: int,
    size: int = 64,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    also_127: bool = False,
    chunk: int = 32,
) -> dict[str, Path]:
    """Render a synthetic GalaxiesML-schema data set (GalSim bulge+disk galaxies) into ``out_dir``.

    Writes ``5x{size}x{size}_{training,validation,testing}_with_morphology.hdf5`` (and the
    ``5x127x127_…`` files when ``also_127``; then the ``size`` stamps are central crops of them).
    Images are ``(N, 5, size, size)`` float32 channels-first on disk, linear flux with ZP 27 mag.

    Args:
        n_train, n_val, n_test: galaxies per split (0 allowed for val/test).
        size: stamp side in pixels (any size ≥ 8; 64 is the published one).
        seed: galaxy ``i`` of a split depends only on (seed, split, i, size, also_127).
        workers: processes (default: CPU count; 1 renders in this process).
        progress: show a tqdm bar.
        chunk: galaxies per work item.
    Returns:
        ``{"training": path, "validation": path, "testing": path}`` (plus ``"…_127"`` keys).

    Raises:
        RuntimeError: called at module level of a script without an ``if __name__ ==
            "__main__":`` guard while ``workers > 1`` (the workers re-import the script); the
            partial files are removed.
    """
    if _in_spawned_import():  # before anything is opened: the parent is writing these files
        raise RuntimeError(_GUARD)
    counts = {"training": int(n_train), "validation": int(n_val), "testing": int(n_test)}
    if any(v < 0 for v in counts.values()) or counts["training"] < 1:
        raise ValueError(f"need n_train >= 1 and n_val, n_test >= 0, got {counts}")
    if size < 8:
        raise ValueError(f"size must be >= 8 pixels, got {size}")
    big = 127 if also_127 else None
    if big is not None and size > big:
        raise ValueError(f"size {size} exceeds the 127-pixel variant it would be cropped from")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))
    tasks = [
        (int(seed), s, lo, min(lo + chunk, counts[name]), int(size), big)
        for s, name in enumerate(SPLITS)
        for lo in range(0, counts[name], chunk)
    ]
    files: dict[str, h5py.File] = {}
    paths: dict[str, Path] = {}
    cols: dict[str, dict[str, list[np.ndarray]]] = {name: {} for name in SPLITS}
    try:
        for name in SPLITS:
            sizes = [(name, int(size))] + ([(f"{name}_127", big)] if big else [])
            for key, sz in sizes:
                paths[key] = out / file_name(name, sz)
                f = h5py.File(paths[key], "w")
                f.create_dataset(
                    IMAGE_KEY, shape=(counts[name], len(BANDS), sz, sz), dtype=np.float32
                )
                f.attrs.update(
                    synthetic=True, seed=int(seed), generator="galaxiesml_data.synthesize"
                )
                files[key] = f
        bar = tqdm(total=sum(counts.values()), disable=not progress, desc="synthesize", unit="gal")
        if workers == 1 or len(tasks) == 1:
            results = map(_render_chunk, tasks)
            pool = None
        else:  # unlike mp.Pool, the executor fails instead of respawning workers that die
            ctx = mp.get_context("spawn")
            pool = ProcessPoolExecutor(min(workers, len(tasks)), mp_context=ctx)
            results = pool.map(_render_chunk, tasks)
        try:
            for split, lo, imgs, bigs, c in results:
                name = SPLITS[split]
                files[name][IMAGE_KEY][lo : lo + len(imgs)] = imgs
                if bigs is not None:
                    files[f"{name}_127"][IMAGE_KEY][lo : lo + len(imgs)] = bigs
                for k, v in c.items():
                    cols[name].setdefault(k, []).append(v)
                bar.update(len(imgs))
        except BrokenProcessPool:
            raise RuntimeError(f"a worker process died; {_GUARD}") from None
        finally:
            bar.close()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        template = cols["training"]
        for key, f in files.items():
            name = key.removesuffix("_127")
            for k, parts in template.items():
                data = np.concatenate(cols[name][k]) if cols[name] else np.empty(0, parts[0].dtype)
                f.create_dataset(k, data=data)
    except BaseException:
        for f in files.values():
            f.close()
        for path in paths.values():  # half-written files would pass for a data set
            path.unlink(missing_ok=True)
        raise
    finally:
        for f in files.values():
            f.close()
    return paths
