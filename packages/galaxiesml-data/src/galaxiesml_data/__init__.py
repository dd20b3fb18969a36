"""galaxiesml-data: stream GalaxiesML HDF5 files, and synthesize a GalSim stand-in in the same schema.

Images are channels-last ``(N, H, W, 5)`` float32 (bands g, r, i, z, y) in every public API; on
disk they are channels-first ``(N, 5, H, W)`` like the published files.
"""

from ._dataset import Dataset, ImageView, ValidationReport, check_values, open_split, validate
from ._loader import (
    batches,
    batches_per_epoch,
    check_balance_power,
    epoch_permutation,
    redshift_weights,
)
from ._schema import (
    BANDS,
    CATALOG_COLUMNS,
    PIXEL_SCALE,
    REDSHIFT_RANGE,
    REQUIRED_KEYS,
    SEXTRACTOR_COLUMNS,
    SPLITS,
    ZERO_POINT,
    GalaxiesMLFormatError,
    file_name,
    find_split,
    write_split,
)
from ._synth import DEPTH_5SIGMA, PSF_FWHM, sky_sigma, synthesize
from ._transforms import (
    ArcsinhStretch,
    MinMaxScale,
    sample_images,
    transform_from_dict,
)

__version__ = "0.1.0"

__all__ = [
    "BANDS",
    "CATALOG_COLUMNS",
    "DEPTH_5SIGMA",
    "PIXEL_SCALE",
    "PSF_FWHM",
    "REDSHIFT_RANGE",
    "REQUIRED_KEYS",
    "SEXTRACTOR_COLUMNS",
    "SPLITS",
    "ZERO_POINT",
    "ArcsinhStretch",
    "Dataset",
    "GalaxiesMLFormatError",
    "ImageView",
    "MinMaxScale",
    "ValidationReport",
    "batches",
    "batches_per_epoch",
    "check_balance_power",
    "check_values",
    "epoch_permutation",
    "file_name",
    "find_split",
    "open_split",
    "redshift_weights",
    "sample_images",
    "sky_sigma",
    "synthesize",
    "transform_from_dict",
    "validate",
    "write_split",
]
