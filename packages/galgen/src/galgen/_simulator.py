"""A trained simulator: load a run directory or a model file, generate galaxies at given redshifts.

``Simulator.sample(redshift)`` returns :class:`Galaxies` — linear-flux images ``(N, H, W, C)`` in
the units of the training files (GalaxiesML: AB magnitude ``zero_point - 2.5 log10(flux)``), with
their redshifts, band names, pixel scale and how they were made. A sampler is compiled once per
(method, steps, guidance, batch size) and reused; the last, shorter batch is padded so it reuses it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from galgen._errors import GalgenError

#: Default number of sampler steps per method (the study's Table 1 settings).
DEFAULT_STEPS: dict[str, int] = {
    "ddpm": 1000,
    "ddim": 60,
    "deis": 30,
    "dpmpp_2m": 30,
    "dpmpp_2s": 15,
    "euler": 60,
    "heun": 30,
    "pmf": 1,
}
#: Sampling methods: every key of ``DEFAULT_STEPS`` but "pmf" needs a DDPM, "pmf" a pMF model.
METHODS: tuple[str, ...] = tuple(DEFAULT_STEPS)
#: Redshift column names ``sample_galsim`` looks for, in order, when none is given.
REDSHIFT_COLUMNS: tuple[str, ...] = ("redshift", "specz_redshift", "z")


@dataclass(frozen=True, eq=False)
class Galaxies:
    """Generated galaxies and how they were made.

    ``images``: ``(N, H, W, C)`` float32 linear flux per pixel, channels in ``bands`` order, in the
    training files' units (AB mag = ``zero_point - 2.5 log10(sum of pixels)``); ``redshift``:
    ``(N,)`` the conditioning redshifts; ``object_id``: ``(N,)`` int64 (the caller's, or 0..N-1);
    ``pixel_scale`` in arcsec/pixel. The stamps are *observed* galaxies: they include the PSF and
    sky noise of the survey the model was trained on.
    """

    images: np.ndarray
    redshift: np.ndarray
    object_id: np.ndarray
    bands: tuple[str, ...]
    pixel_scale: float
    zero_point: float
    method: str
    steps: int
    nfe: int
    guidance: float
    seed: int
    seconds: float
    model: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def attrs(self) -> dict[str, Any]:
        """Provenance written into every output file: method, steps, NFE, guidance, seed, ..."""
        return {
            "method": self.method,
            "steps": int(self.steps),
            "nfe": int(self.nfe),
            "guidance": float(self.guidance),
            "seed": int(self.seed),
            "model": self.model,
            "generator": "galgen",
            "pixel_scale": float(self.pixel_scale),
            "zero_point": float(self.zero_point),
            "bands": ",".join(self.bands),
            **self.extra,
        }

    def to_hdf5(self, path: str | Path) -> Path:
        """Write a GalaxiesML-schema file (``galaxiesml_data.open_split`` reads it back)."""
        import h5py
        from galaxiesml_data import write_split

        from galgen._io import atomic_write

        path = Path(path)
        with atomic_write(path) as tmp:
            write_split(tmp, self.images, self.redshift, columns={"object_id": self.object_id})
            with h5py.File(tmp, "a") as f:
                f.attrs.update(self.attrs)
        return path

    def to_fits(self, path: str | Path) -> Path:
        """Write one FITS file: an image HDU per band, a CATALOG table (see ``galgen.write_fits``)."""
        from galgen._fits import write_fits

        return write_fits(path, self)


def _check_redshift(redshift: Any) -> np.ndarray:
    from diffusion_core import REDSHIFT_DOMAIN, check_redshift

    try:
        z = np.asarray(redshift, np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise GalgenError(f"redshift: expected numbers, got {type(redshift).__name__}") from None
    if z.size == 0:
        raise GalgenError("redshift: no redshifts given (need at least one)")
    try:
        check_redshift(z, "sample", high=REDSHIFT_DOMAIN[1])
    except ValueError as exc:
        raise GalgenError(str(exc)) from None
    return z.astype(np.float32)


class Simulator:
    """A trained generative model of galaxy images, conditioned on redshift.

    Build one with :meth:`load` (a run directory written by training, or a model file written
    by :meth:`export`). ``config`` is the run's resolved configuration (``model``, ``backbone``,
    ``objective``, ``transform``, ``data_range``, ``image_size``, ``channels``, ...), ``params``
    the network's (EMA) parameters.
    """

    def __init__(self, config: Mapping[str, Any], params: Any, *, source: str = "") -> None:
        from galaxiesml_data import transform_from_dict

        missing = [
            k
            for k in ("model", "backbone", "image_size", "channels", "transform")
            if k not in config
        ]
        if missing:
            raise GalgenError(f"{source or 'config'}: missing key {missing[0]!r}")
        self.config: dict[str, Any] = dict(config)
        self.source = source
        self._net = _build(self.config)
        self._params = params
        self._transform = transform_from_dict(self.config["transform"])
        self._samplers: dict[tuple, tuple[Callable, dict[str, int]]] = {}
        self.traces = 0  # how many times a sampler was traced (= compiled); see ``sample``
        self.step: int | None = None  # training step of the weights (runs; None for model files)

    # ------------------------------------------------------------------ loading and saving

    @classmethod
    def load(cls, path: str | Path) -> Simulator:
        """From a run directory (its newest checkpoint's EMA weights) or a model file."""
        path = Path(path)
        if path.is_dir():
            return cls._from_run(path)
        if path.is_file():
            from galgen._modelfile import read_model

            cfg, params = read_model(path)
            return cls(cfg, params, source=path.name)
        raise GalgenError(f"{path}: no such run directory or model file")

    @classmethod
    def _from_run(cls, run: Path) -> Simulator:
        import json

        import diffusion_core as dc
        import jax

        cfg_path = run / "config.json"
        if not cfg_path.exists():
            raise GalgenError(f"{run} is not a run directory (no config.json)")
        cfg = json.loads(cfg_path.read_text())
        if dc.latest_step(run) is None:
            raise GalgenError(
                f"{run} has no checkpoint yet; train it first (galgen train ... --out {run})"
            )
        like = jax.eval_shape(_build(cfg).init, jax.random.key(0))
        params, step = dc.load_ema_params(run, params_like=like)
        sim = cls(cfg, params, source=str(run.resolve()))
        sim.step = step
        return sim

    def export(self, path: str | Path) -> Path:
        """Write a portable model file (EMA weights + config, no optimizer, no paths)."""
        from galgen._modelfile import write_model

        return write_model(path, self.config, self._params)

    # ------------------------------------------------------------------ description

    @property
    def model(self) -> str:
        """'ddpm' or 'pmf'."""
        return str(self.config["model"])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of one generated stamp."""
        s, c = int(self.config["image_size"]), int(self.config["channels"])
        return (s, s, c)

    @property
    def bands(self) -> tuple[str, ...]:
        from galaxiesml_data import BANDS

        return tuple(self.config.get("bands", BANDS[: self.image_shape[2]]))

    @property
    def pixel_scale(self) -> float:
        """Arcsec per pixel of the training stamps."""
        from galaxiesml_data import PIXEL_SCALE

        return float(self.config.get("pixel_scale", PIXEL_SCALE))

    @property
    def zero_point(self) -> float:
        """AB zero point of the pixel values: ``mag = zero_point - 2.5 log10(flux)``."""
        from galaxiesml_data import ZERO_POINT

        return float(self.config.get("zero_point", ZERO_POINT))

    @property
    def methods(self) -> tuple[str, ...]:
        """The sampling methods this model supports."""
        return ("pmf",) if self.model == "pmf" else tuple(m for m in METHODS if m != "pmf")

    @property
    def default_method(self) -> str:
        return "pmf" if self.model == "pmf" else "dpmpp_2m"

    def __repr__(self) -> str:
        h, w, c = self.image_shape
        return (
            f"Simulator({self.model}, {self.config['backbone'].get('preset')}, {h}x{w}x{c}, "
            f"bands={''.join(self.bands)}, source={self.source!r})"
        )

    # ------------------------------------------------------------------ sampling

    def _sampler(
        self, method: str, steps: int, guidance: float | None
    ) -> tuple[Callable, dict[str, int]]:
        """A jitted ``fn(params, index (B,), redshift (B,), key) -> x (B, H, W, C)`` (stretched
        space) and a box holding its NFE once traced. Cached per (method, steps, guidance)."""
        key = (method, steps, guidance)
        if key in self._samplers:
            return self._samplers[key]
        import jax

        cfg, apply = self.config, self._net.apply
        lo, hi = cfg.get("data_range", (-np.inf, np.inf))
        shape = self.image_shape
        box: dict[str, int] = {}

        def noise_of(index, key):
            # galaxy i's noise depends only on (seed, i): the same image whatever the batching
            return jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), shape))(index)

        def step_keys_of(index, key):
            # and so do a stochastic solver's ('ddpm') step noises: one key per galaxy
            return jax.vmap(lambda i: jax.random.fold_in(jax.random.fold_in(key, i), 1))(index)

        # one sampler entry point for both kinds: ode_samplers.sample with the model's model_fn
        from ode_samplers import sample as ode_sample

        if self.model == "pmf":
            import meanflow as mf
            from ode_samplers import FlowSchedule

            w = 1.0 if guidance is None else guidance
            mcfg = mf.PMFConfig.from_dict(cfg["objective"])
            sched, prediction, passes = FlowSchedule(), "flow", 1
            method = "mean_flow"  # the pMF's own few-step map; DEFAULT_STEPS["pmf"] steps

            def model_fn_of(params, z):
                return mf.pmf_model_fn(
                    apply, params, z, guidance=w, config=mcfg, stats=data_stats(cfg)
                )
        else:
            import diffusion_core as dc

            sched = dc.ddpm_schedule()
            passes = 2 if guidance not in (None, 1.0) else 1
            dcfg = dc.DDPMConfig.from_dict(cfg["objective"])
            prediction = dcfg.prediction
            baseline_apply = dc.with_baseline(apply, sched, dcfg, data_stats(cfg))

            def model_fn_of(params, z):
                return dc.ddpm_model_fn(baseline_apply, params, z, guidance=guidance)

        def fn(params, index, z, key):
            self.traces += 1
            x, nfe = ode_sample(
                model_fn_of(params, z), noise_of(index, key), schedule=sched, method=method,
                num_steps=steps, prediction=prediction, key=step_keys_of(index, key), return_nfe=True,
                clip_x0=(lo, hi),
            )  # fmt: skip
            box["nfe"] = nfe * passes
            return x

        from diffusion_core import step_compiler_options

        # the train step's XLA:CPU options (convolutions by Eigen, not YNNPACK): a ddpm-tiny
        # forward pass at 32x32, batch 128, 321 -> 190 ms on 2 cores (docs/results.md, issue 21)
        opts = step_compiler_options(jax.devices()[:1])
        self._samplers[key] = (jax.jit(fn, compiler_options=opts), box)
        return self._samplers[key]

    def _check_guidance(self, guidance: float | None) -> None:
        """A guidance scale the model never learned is an error naming the run and the option."""
        if guidance is None or guidance == 1.0:
            return
        obj = self.config["objective"]
        if self.model == "ddpm" and not obj.get("dropout", 0.0) > 0:
            raise GalgenError(
                f"guidance={guidance:g}: {self.source} is a DDPM trained without label dropout "
                "(objective.dropout=0), so the null-redshift embedding that guidance needs was "
                "never trained; use guidance 1, or train with --set objective.dropout=0.1"
            )
        if self.model == "pmf":
            import meanflow as mf

            try:
                mf.check_guidance(guidance, mf.PMFConfig.from_dict(obj), where=self.source)
            except ValueError as exc:
                raise GalgenError(str(exc)) from None

    def _resolve(self, method: str | None, steps: int | None) -> tuple[str, int]:
        method = method or self.default_method
        check_method(method)
        if method not in self.methods:
            need = "a pMF model" if method == "pmf" else "a DDPM model"
            raise GalgenError(
                f"method {method!r} needs {need}; this is a {self.model} model "
                f"(methods: {', '.join(self.methods)})"
            )
        if steps is None:
            steps = DEFAULT_STEPS[method]
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise GalgenError(f"steps={steps!r}: need a positive whole number of sampler steps")
        return method, int(steps)

    def sample(
        self,
        redshift: Any,
        *,
        method: str | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        seed: int = 0,
        batch_size: int = 256,
        object_id: Any = None,
        progress: bool | None = None,
    ) -> Galaxies:
        """Generate one galaxy per redshift.

        Args:
            redshift: ``(N,)`` redshifts in [0, 4] (a scalar gives one galaxy).
            method: one of :attr:`methods` (default: 'pmf' for a pMF model, 'dpmpp_2m' else).
            steps: sampler steps (default: the study's setting for the method).
            guidance: classifier-free guidance scale w (None or 1: none; a DDPM guided step
                costs two network evaluations, pMF guidance is learned and costs none).
            seed: galaxy i's starting noise (and 'ddpm''s step noises) depend only on
                (seed, i), so every method gives the same galaxy whatever ``batch_size``.
            batch_size: galaxies per compiled call (memory); the last batch is padded.
            object_id: ``(N,)`` integer ids carried into the outputs (default 0..N-1).
            progress: show a progress bar (default: when there is more than one batch).

        Returns:
            :class:`Galaxies` with ``images (N, H, W, C)`` float32 linear flux.
        """
        import jax
        from tqdm.auto import tqdm

        z = _check_redshift(redshift)
        method, steps = self._resolve(method, steps)
        if guidance is not None and not (np.isfinite(guidance) and guidance >= 1.0):
            raise GalgenError(f"guidance={guidance!r}: need a finite scale w >= 1 (1 = none)")
        self._check_guidance(guidance)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise GalgenError(f"batch_size={batch_size!r}: need a positive integer")
        n = z.size
        ids = np.arange(n, dtype=np.int64) if object_id is None else np.asarray(object_id)
        if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer):
            raise GalgenError(f"object_id: need {n} integers (one per redshift), got {ids.shape}")
        fn, box = self._sampler(method, steps, guidance)
        bsz = min(batch_size, n)
        key = jax.random.key(seed)
        out = []
        bar = tqdm(total=n, desc=f"sample {method}", unit="gal", disable=not (progress or (progress is None and n > bsz)))  # fmt: skip
        t0 = time.perf_counter()
        for i in range(0, n, bsz):
            m = min(bsz, n - i)
            index = np.arange(i, i + bsz, dtype=np.int32)
            zc = np.full(bsz, z[i + m - 1], np.float32)  # pad with a real redshift
            zc[:m] = z[i : i + m]
            x = fn(self._params, index, zc, key)
            out.append(np.asarray(x)[:m])
            bar.update(m)
        bar.close()
        x = np.concatenate(out)
        seconds = time.perf_counter() - t0
        images = np.asarray(self._transform.inverse(x), np.float32)
        return Galaxies(
            images=images,
            redshift=z,
            object_id=ids.astype(np.int64),
            bands=self.bands,
            pixel_scale=self.pixel_scale,
            zero_point=self.zero_point,
            method=method,
            steps=steps,
            nfe=int(box["nfe"]),
            guidance=1.0 if guidance is None else float(guidance),
            seed=int(seed),
            seconds=seconds,
            model=self.source,
        )

    # ------------------------------------------------------------------ GalSim

    def sample_galsim(
        self,
        catalog: Any,
        rng: Any = None,
        *,
        redshift_column: str | None = None,
        method: str | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        batch_size: int = 256,
    ) -> list[dict[str, Any]]:
        """One ``{band: galsim.InterpolatedImage}`` per catalog row, at the model's pixel scale.

        ``catalog``: an astropy Table, a dict of arrays or a numpy structured array with a redshift
        column (``redshift_column``, else the first of ``REDSHIFT_COLUMNS`` present). ``rng``: a
        ``galsim.BaseDeviate`` (or an int seed); one draw from it seeds the model, so a GalSim
        script seeded once is reproducible. Each profile's flux is its stamp's pixel sum in the
        training files' units. The stamps are *observed* galaxies (survey PSF and sky noise
        included): draw them with ``method="no_pixel"`` and do not convolve them with a PSF again.
        """
        try:
            import galsim
        except ImportError:  # pragma: no cover - galsim is a declared extra
            raise GalgenError("sample_galsim needs GalSim: pip install 'galgen[galsim]'") from None
        z = _catalog_column(catalog, redshift_column)
        if rng is None:
            rng = galsim.BaseDeviate()
        elif not isinstance(rng, galsim.BaseDeviate):
            rng = galsim.BaseDeviate(int(rng))
        seed = int(rng.raw())
        gals = self.sample(
            z, method=method, steps=steps, guidance=guidance, seed=seed, batch_size=batch_size
        )
        out = []
        for img in gals.images:
            out.append(
                {
                    b: galsim.InterpolatedImage(
                        galsim.Image(np.ascontiguousarray(img[..., c], np.float64), scale=self.pixel_scale)
                    )
                    for c, b in enumerate(self.bands)
                }
            )  # fmt: skip
        return out


def _catalog_column(catalog: Any, column: str | None) -> np.ndarray:
    """The redshift column of an astropy Table, a mapping or a structured array."""
    names: Sequence[str]
    if hasattr(catalog, "colnames"):
        names = list(catalog.colnames)
    elif getattr(getattr(catalog, "dtype", None), "names", None):
        names = list(catalog.dtype.names)
    elif isinstance(catalog, Mapping):
        names = list(catalog)
    else:
        raise GalgenError(
            f"catalog: expected an astropy Table, a dict or a structured array, "
            f"got {type(catalog).__name__}"
        )
    if column is None:
        column = next((c for c in REDSHIFT_COLUMNS if c in names), None)
        if column is None:
            raise GalgenError(
                f"catalog has no redshift column (looked for {', '.join(REDSHIFT_COLUMNS)}; "
                f"columns: {', '.join(map(str, names))}); pass redshift_column="
            )
    elif column not in names:
        raise GalgenError(f"catalog has no column {column!r} (columns: {', '.join(names)})")
    return np.asarray(catalog[column], np.float64)


def check_method(method: str) -> None:
    """Refuse a sampling method name that no model supports, listing the choices."""
    if method not in METHODS:
        raise GalgenError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


def data_stats(cfg: Mapping[str, Any]) -> tuple[list[float], ...] | None:
    """Per-band ``(mean, std)`` of the run's stretched training data, when its objective needs
    them (``objective.baseline="gaussian"``, DDPM or pMF; the DDPM's ``objective.pixel_weight``),
    with the arcsinh stretch's ``norm`` appended for ``"gaussian_asinh"``; the DDPM's
    ``"gaussian_mixture"`` gets the pixel mixture ``(weight, mean, cov)``; None otherwise."""
    obj = cfg["objective"]
    needs = [k for k in ("baseline", "pixel_weight") if obj.get(k, 0) not in (0, "none")]
    if not needs:
        return None
    stats = cfg.get("data_stats")
    if stats is None:
        raise GalgenError(f"objective.{needs[0]} needs the run's data_stats; this config has none")
    if obj.get("baseline") == "gaussian_mixture":
        mix = stats.get("mixture")
        if mix is None:
            raise GalgenError(
                "objective.baseline='gaussian_mixture' needs data_stats.mixture; this run was "
                "trained without one"
            )
        return mix["weight"], mix["mean"], mix["cov"]
    if obj.get("baseline") != "gaussian_asinh":
        return stats["mean"], stats["std"]
    tf = cfg.get("transform", {})
    if tf.get("kind") != "arcsinh":
        raise GalgenError(
            "objective.baseline='gaussian_asinh' needs data.transform='arcsinh' "
            f"(this run's transform is {tf.get('kind')!r})"
        )
    return stats["mean"], stats["std"], tf["norm"]


def _build(cfg: Mapping[str, Any]):
    """The run's backbone for its image size and channels (built once per distinct setting:
    loading and training both ask for it twice — for the weight template and the sampler)."""
    import json

    key = json.dumps(
        [cfg["backbone"], int(cfg["image_size"]), int(cfg["channels"])], sort_keys=True
    )
    return _build_cached(key)


@functools.lru_cache(maxsize=16)
def _build_cached(key: str):
    # a Backbone holds pure functions (init, apply) and its config: safe to share
    import json

    from gen_backbones import build

    bb, size, channels = json.loads(key)
    name = bb.pop("preset")
    return build(name, image_size=size, channels=channels, **bb)
