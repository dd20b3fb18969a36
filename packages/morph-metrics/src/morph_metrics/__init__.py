"""morph-metrics: galaxy morphology measurement and distribution metrics (JSD, BCD).

Measure semi-major axis, ellipticity, Sérsic index and isophotal area on ``(N, H, W, C)`` stamps
with :func:`measure` (``protocol="statmorph"`` or ``"paper"``), then compare a generated sample to
a reference one with :func:`jsd` on :func:`histograms` and with :func:`bcd`, and format the
results like the reference study's Table 1 with :func:`format_table`. :func:`measure_chunks`
measures a file too large for memory chunk by chunk through a reader, locally or on a Dask cluster
(:func:`dask_client`, extra ``morph-metrics[dask]``).

Photometry (:func:`photometry`: aperture fluxes, asinh magnitudes, colours), image statistics
(:func:`sky_noise`, :func:`border_excess`, :func:`radial_profile`, :func:`pixel_histogram`), the
real-vs-real floor (:func:`real_floor`, :func:`floor_ratio`) and photometric redshifts
(:class:`PhotoZ`, extra ``morph-metrics[photoz]``) are morphology's neighbours.
"""

from ._dask import check_scheduler, dask_client
from ._floor import (
    bcd_units,
    column_edges,
    compare_columns,
    floor_ratio,
    match_redshifts,
    real_floor,
)
from ._imagestats import (
    border_excess,
    border_level,
    border_mask,
    border_pixels,
    pixel_histogram,
    radial_profile,
    sky_noise,
    sky_ratio,
)
from ._measure import PROTOCOLS, Flag, measure, measure_chunks
from ._metrics import (
    BCD_EDGES,
    DEFAULT_BINS,
    DEFAULT_RANGES,
    bcd,
    compare,
    default_edges,
    histograms,
    jsd,
    jsd_bootstrap,
)
from ._photometry import (
    COLOUR_Z_EDGES,
    HSC_BANDS,
    HSC_ZERO_POINT,
    PHOTOMETRY_RANGES,
    aperture_flux,
    aperture_weights,
    asinh_mag,
    binned_median_offset,
    binned_quantiles,
    colour_names,
    colours,
    flux_edges,
    photometry,
    photometry_edges,
    softening_from_sky,
)
from ._photoz import OUTLIER_THRESHOLD, PhotoZ, photoz_features, photoz_metrics
from ._report import format_table, format_value
from ._survey import HSC, Survey, gaussian_psf

__version__ = "0.1.0"

__all__ = [
    "BCD_EDGES",
    "COLOUR_Z_EDGES",
    "DEFAULT_BINS",
    "DEFAULT_RANGES",
    "Flag",
    "HSC",
    "HSC_BANDS",
    "HSC_ZERO_POINT",
    "OUTLIER_THRESHOLD",
    "PHOTOMETRY_RANGES",
    "PROTOCOLS",
    "PhotoZ",
    "Survey",
    "aperture_flux",
    "aperture_weights",
    "asinh_mag",
    "bcd",
    "bcd_units",
    "check_scheduler",
    "binned_median_offset",
    "binned_quantiles",
    "border_excess",
    "border_mask",
    "border_level",
    "border_pixels",
    "colour_names",
    "colours",
    "column_edges",
    "compare",
    "compare_columns",
    "dask_client",
    "default_edges",
    "floor_ratio",
    "flux_edges",
    "format_table",
    "format_value",
    "gaussian_psf",
    "histograms",
    "jsd",
    "jsd_bootstrap",
    "match_redshifts",
    "measure",
    "measure_chunks",
    "photometry",
    "photometry_edges",
    "photoz_features",
    "photoz_metrics",
    "pixel_histogram",
    "radial_profile",
    "real_floor",
    "sky_noise",
    "sky_ratio",
    "softening_from_sky",
]
