"""FITS output that survey pipelines accept: one image HDU per band and a catalog table.

Layout::

    HDU 0  PRIMARY   no data; provenance (ORIGIN, METHOD, STEPS, NFE, GUIDANCE, SEED, MODEL),
                     NGAL, BANDS, PIXSCALE, MAGZP
    HDU k  HSC-<B>   (N, H, W) float32 cube of band B (NAXIS3 = galaxy, row i of CATALOG);
                     BUNIT, FILTER, BAND, PIXSCALE, MAGZP, FLUXMAG0
    last   CATALOG   binary table: INDEX, OBJECT_ID, REDSHIFT

Pixel values are the training files' calibrated fluxes: AB mag = MAGZP - 2.5 log10(sum of pixels)
(GalaxiesML: MAGZP = 27, so 1 unit = 57.5 nJy). They are observed stamps (PSF and sky included).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from galgen._io import atomic_write

if TYPE_CHECKING:
    from galgen._simulator import Galaxies


def _card_value(v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    return str(v)[:68]


def write_fits(path: str | Path, gals: Galaxies, *, survey: str = "HSC") -> Path:
    """Write ``gals`` to ``path`` (overwritten; written to a temporary file first)."""
    from astropy.io import fits

    path = Path(path)
    prim = fits.PrimaryHDU()
    h = prim.header
    h["ORIGIN"] = ("galgen", "generated galaxies, not observations")
    h["METHOD"] = (gals.method, "sampling method")
    h["STEPS"] = (int(gals.steps), "sampler steps")
    h["NFE"] = (int(gals.nfe), "network evaluations per galaxy")
    h["GUIDANCE"] = (float(gals.guidance), "CFG scale w (1 = none)")
    h["SEED"] = (int(gals.seed), "random seed")
    h["MODEL"] = (Path(gals.model).name[:40] if gals.model else "", "model file or run")
    h["NGAL"] = (len(gals), "number of galaxies (NAXIS3 of each band)")
    h["BANDS"] = (",".join(gals.bands), "band order of the image HDUs")
    h["PIXSCALE"] = (float(gals.pixel_scale), "[arcsec/pixel]")
    h["MAGZP"] = (float(gals.zero_point), "AB mag = MAGZP - 2.5 log10(flux)")
    for k, v in gals.extra.items():
        key = str(k).upper()[:8]
        if key not in h:
            h[key] = _card_value(v)
    hdus = [prim]
    for c, band in enumerate(gals.bands):
        img = fits.ImageHDU(
            np.ascontiguousarray(gals.images[..., c], np.float32),
            name=f"{survey}-{band.upper()}",
        )
        ih = img.header
        ih["BUNIT"] = ("count", "calibrated: AB mag = MAGZP - 2.5 log10(flux)")
        ih["FILTER"] = (f"{survey}-{band.upper()}", "band")
        ih["BAND"] = (band, "band name")
        ih["PIXSCALE"] = (float(gals.pixel_scale), "[arcsec/pixel]")
        ih["MAGZP"] = (float(gals.zero_point), "AB magnitude zero point")
        ih["FLUXMAG0"] = (float(10 ** (0.4 * gals.zero_point)), "flux of a mag-0 source")
        hdus.append(img)
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="INDEX", format="J", array=np.arange(len(gals), dtype=np.int32)),
            fits.Column(name="OBJECT_ID", format="K", array=np.asarray(gals.object_id, np.int64)),
            fits.Column(name="REDSHIFT", format="E", array=np.asarray(gals.redshift, np.float32)),
        ],
        name="CATALOG",
    )
    table.header["TTYPE3"] = ("REDSHIFT", "conditioning redshift")
    hdus.append(table)
    with atomic_write(path) as tmp:
        fits.HDUList(hdus).writeto(tmp, overwrite=True, output_verify="exception")
    return path
