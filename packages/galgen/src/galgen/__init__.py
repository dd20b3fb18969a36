"""galgen: redshift-conditioned galaxy image simulators as a library.

Train a run, load it (or a portable model file) as a :class:`Simulator`, generate galaxies in
linear flux, write them as GalaxiesML-schema HDF5 or FITS, hand them to GalSim, and evaluate them
against real galaxies. The ``galgen`` command line (package ``galgen-cli``) is a thin layer over
these functions. Importing ``galgen`` is light: JAX and friends load on first use.

    >>> sim = galgen.Simulator.load("runs/pmf")            # or a .galgen model file
    >>> gals = sim.sample([0.3, 1.2, 2.5], seed=0)          # Galaxies: images (3, H, W, 5)
    >>> gals.to_fits("gals.fits")
"""

from galgen._distributed import init_distributed, is_distributed, split_cpu
from galgen._errors import GalgenError
from galgen._fits import write_fits
from galgen._modelfile import read_model, write_model
from galgen._presets import REPRODUCE_PRESETS, TRAIN_PRESETS, resolve
from galgen._simulator import DEFAULT_STEPS, METHODS, Galaxies, Simulator, check_method
from galgen._study import (
    bench,
    check_config,
    environment,
    evaluate,
    export,
    info,
    redshifts_from,
    reproduce,
    sample,
    synth,
    train,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_STEPS",
    "METHODS",
    "REPRODUCE_PRESETS",
    "TRAIN_PRESETS",
    "Galaxies",
    "GalgenError",
    "Simulator",
    "bench",
    "check_config",
    "check_method",
    "environment",
    "evaluate",
    "export",
    "info",
    "init_distributed",
    "is_distributed",
    "read_model",
    "redshifts_from",
    "reproduce",
    "resolve",
    "sample",
    "split_cpu",
    "synth",
    "train",
    "write_fits",
    "write_model",
]
