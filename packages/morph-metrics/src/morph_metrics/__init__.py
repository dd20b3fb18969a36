"""morph-metrics: galaxy morphology measurement and distribution metrics (JSD, BCD).

Measure semi-major axis, ellipticity, Sérsic index and isophotal area on ``(N, H, W, C)`` stamps
with :func:`measure` (``protocol="statmorph"`` or ``"paper"``), then compare a generated sample to
a reference one with :func:`jsd` on :func:`histograms` and with :func:`bcd`, and format the
results like the reference study's Table 1 with :func:`format_table`.
"""

from ._measure import PROTOCOLS, Flag, measure
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
from ._report import format_table, format_value
from ._survey import HSC, Survey, gaussian_psf

__version__ = "0.1.0"

__all__ = [
    "BCD_EDGES",
    "DEFAULT_BINS",
    "DEFAULT_RANGES",
    "HSC",
    "PROTOCOLS",
    "Flag",
    "Survey",
    "bcd",
    "compare",
    "default_edges",
    "format_table",
    "format_value",
    "gaussian_psf",
    "histograms",
    "jsd",
    "jsd_bootstrap",
    "measure",
]
