"""The Simulator: sampling by seed, compile-once batching, portable model files, HDF5/FITS output.

The runs are real (trained two steps on a 16-pixel synthetic set): every path a user takes —
run directory, model file, fresh process — goes through the same code.
"""

import json
import subprocess
import sys
import warnings

import galgen
import numpy as np
import pytest
from galgen import GalgenError, Simulator

Z = np.array([0.1, 0.7, 1.3, 2.2, 3.9], np.float32)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    data = root / "data"
    galgen.synth(data, n_train=32, n_val=8, n_test=8, size=16, seed=0, workers=1)
    out = {"root": root, "data": data}
    for model in ("pmf", "ddpm"):
        out[model] = root / model
        galgen.train(
            model, data, out[model], preset=None, seed=0, resume=False,
            overrides=["train.steps=2", "train.batch_size=4", "train.checkpoint_every=2"],
        )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def pmf(runs):
    return Simulator.load(runs["pmf"])


def test_sample_is_reproducible_by_seed_and_independent_of_batching(pmf):
    a = pmf.sample(Z, seed=3)
    assert a.images.shape == (5, 16, 16, 5) and a.images.dtype == np.float32
    assert np.isfinite(a.images).all()
    np.testing.assert_array_equal(a.images, pmf.sample(Z, seed=3).images)
    assert not np.allclose(a.images, pmf.sample(Z, seed=4).images)
    # galaxy i's noise depends on (seed, i) only: batches of 2 (2 + 2 + padded 1) agree
    b = pmf.sample(Z, seed=3, batch_size=2)
    np.testing.assert_allclose(a.images, b.images, rtol=1e-4, atol=1e-5)  # float reassociation
    np.testing.assert_array_equal(a.redshift, Z)
    np.testing.assert_array_equal(a.object_id, np.arange(5))
    assert (a.method, a.steps, a.nfe, a.guidance, a.seed) == ("pmf", 1, 1, 1.0, 3)
    assert a.bands == ("g", "r", "i", "z", "y") and a.pixel_scale == pytest.approx(0.168)


def test_ddpm_galaxies_are_independent_of_batching_ancestral_sampling_too(runs):
    """'ddpm' (ancestral) draws fresh noise at every step: each galaxy's step noises come from
    (seed, i) like its starting noise, so batches of 2 (2 + 2 + padded 1) give the batch-of-5
    galaxies — before, a batch's step key came from where the batch started."""
    sim = Simulator.load(runs["ddpm"])
    for method in ("ddpm", "dpmpp_2m"):
        a = sim.sample(Z, method=method, steps=8, seed=3)
        b = sim.sample(Z, method=method, steps=8, seed=3, batch_size=2)
        np.testing.assert_allclose(a.images, b.images, rtol=1e-4, atol=1e-4)
    assert not np.allclose(a.images, sim.sample(Z, method="dpmpp_2m", steps=8, seed=4).images)


def test_sampler_compiles_once_per_shape_and_the_last_batch_is_padded(runs):
    sim = Simulator.load(runs["pmf"])
    sim.sample(Z, seed=0, batch_size=2)  # batches 2, 2 and a padded 1
    assert sim.traces == 1
    sim.sample(Z[:3], seed=1, batch_size=2)  # same (method, steps, guidance, batch): reused
    assert sim.traces == 1
    sim.sample(Z, seed=0, steps=2, batch_size=2)  # another sampler
    assert sim.traces == 2


def test_ddpm_methods_nfe_and_guidance(runs):
    sim = Simulator.load(runs["ddpm"])
    assert sim.model == "ddpm" and sim.default_method == "dpmpp_2m"
    g = sim.sample(Z[:2], method="ddim", steps=3)
    assert g.nfe == 3 and np.isfinite(g.images).all()
    # trained without label dropout (the tiny preset): the null embedding guidance needs is untrained
    with pytest.raises(GalgenError) as exc:
        sim.sample(Z[:2], method="ddim", steps=3, guidance=2.0)
    assert str(exc.value).startswith(f"guidance=2: {sim.source} is a DDPM trained without label")
    assert "objective.dropout=0" in str(exc.value)
    cfg = {**sim.config, "objective": {**sim.config["objective"], "dropout": 0.1}}
    guided = Simulator(cfg, sim._params, source="with-dropout")
    assert guided.sample(Z[:2], method="ddim", steps=3, guidance=2.0).nfe == 6  # two passes a step
    st = sim.sample(Z[:2], method="ddpm", steps=4, seed=1)
    np.testing.assert_array_equal(
        st.images, sim.sample(Z[:2], method="ddpm", steps=4, seed=1).images
    )


@pytest.mark.parametrize(
    "kwargs, culprit",
    [
        ({"redshift": [0.5, np.nan]}, "redshift[1]"),
        ({"redshift": [-0.1]}, "redshift[0]"),
        ({"redshift": [4.5]}, "redshift[0] = 4.5; redshifts must be finite and in [0, 4]"),
        ({"redshift": []}, "no redshifts"),
        ({"redshift": ["a"]}, "redshift"),
        ({"redshift": [1.0], "method": "ddim"}, "needs a DDPM"),
        ({"redshift": [1.0], "method": "rk45"}, "rk45"),
        ({"redshift": [1.0], "steps": 0}, "steps=0"),
        ({"redshift": [1.0], "steps": 1.5}, "steps=1.5"),
        ({"redshift": [1.0], "guidance": 0.5}, "guidance=0.5"),
        ({"redshift": [1.0], "guidance": 9.0}, "guidance=9 lies outside the scales [1, 7]"),
        ({"redshift": [1.0], "batch_size": 0}, "batch_size=0"),
        ({"redshift": [1.0, 2.0], "object_id": [1]}, "object_id"),
    ],
)
def test_bad_sampling_arguments_name_the_culprit(pmf, kwargs, culprit):
    with pytest.raises(GalgenError, match=None) as exc:
        pmf.sample(**kwargs)
    assert culprit in str(exc.value)


def test_run_loads_only_the_ema_weights(runs, pmf):
    import diffusion_core as dc

    state = dc.load_checkpoint(runs["pmf"])
    for a, b in zip(
        dc_leaves(pmf._params), dc_leaves(state.ema_params), strict=True
    ):  # the EMA, not the raw weights
        np.testing.assert_array_equal(a, b)


def dc_leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(tree)]


# ----------------------------------------------------------------------------- model files


def test_export_load_identical_samples_without_paths(runs, pmf, tmp_path):
    path = pmf.export(tmp_path / "pmf.galgen")
    raw = path.read_bytes()
    assert str(runs["root"]).encode() not in raw  # no absolute paths travel with the model
    sim = Simulator.load(path)
    assert "data_dir" not in sim.config and sim.config["transform"] == pmf.config["transform"]
    np.testing.assert_array_equal(sim.sample(Z, seed=5).images, pmf.sample(Z, seed=5).images)


def test_model_file_loads_in_a_fresh_process_without_the_run_or_data(runs, pmf, tmp_path):
    """The nox session of this package holds only galgen and its dependencies: a fresh
    interpreter there, with the run and the data out of reach, reproduces the samples."""
    import shutil

    path = pmf.export(tmp_path / "m.galgen")
    want = pmf.sample(Z, seed=9).images
    copy = tmp_path / "copy"
    shutil.copytree(runs["data"], copy)  # restore after: other tests use the data
    shutil.rmtree(runs["data"])
    try:
        code = (
            "import sys, numpy as np, galgen; "
            "g = galgen.Simulator.load(sys.argv[1]).sample(np.array(sys.argv[2].split(','), "
            "float), seed=9); np.save(sys.argv[3], g.images)"
        )
        zs = ",".join(str(float(z)) for z in Z)
        subprocess.run(
            [sys.executable, "-c", code, str(path), zs, str(tmp_path / "got.npy")],
            check=True, cwd=tmp_path, capture_output=True,
        )  # fmt: skip
    finally:
        shutil.copytree(copy, runs["data"])
    np.testing.assert_array_equal(np.load(tmp_path / "got.npy"), want)


def _rewrite(path, name, header_fn=None, payload_fn=None, resign=False):
    """A model file with its header/payload edited (optionally with a recomputed checksum)."""
    import struct

    from galgen._modelfile import MAGIC, _digest

    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[len(MAGIC) : len(MAGIC) + 8])
    head = json.loads(raw[len(MAGIC) + 8 : len(MAGIC) + 8 + n])
    payload = raw[len(MAGIC) + 8 + n :]
    if header_fn:
        header_fn(head)
    if payload_fn:
        payload = payload_fn(payload)
    if resign:
        head.pop("sha256")
        head["payload_bytes"] = len(payload)
        head["sha256"] = _digest(head, payload)
    h = json.dumps(head).encode()
    out = path.with_name(name)
    out.write_bytes(MAGIC + struct.pack("<Q", len(h)) + h + payload)
    return out


def _flip(b: bytes) -> bytes:
    i = len(b) // 2
    return b[:i] + bytes([b[i] ^ 0xFF]) + b[i + 1 :]


def test_tampered_truncated_or_foreign_model_files_are_refused_by_name(pmf, tmp_path, runs):
    good = pmf.export(tmp_path / "good.galgen")
    raw = good.read_bytes()
    cases = {
        "truncated": (good.with_name("cut.galgen"), raw[: len(raw) - 100], "truncated"),
        "not a model": (good.with_name("x.galgen"), b"PK\x03\x04 not a model", "not a galgen"),
        "empty": (good.with_name("empty.galgen"), b"", "not a galgen"),
    }
    for path, data, _ in cases.values():
        path.write_bytes(data)
    cases["flipped weight"] = (_rewrite(good, "flip.galgen", payload_fn=_flip), None, "checksum")

    def edit_cfg(h):
        h["config"]["backbone"]["ch"] = 8

    cases["edited config"] = (_rewrite(good, "edit.galgen", header_fn=edit_cfg), None, "checksum")

    def future(h):
        h["format_version"] = 99

    cases["future version"] = (
        _rewrite(good, "v99.galgen", header_fn=future, resign=True),
        None,
        "version 99",
    )
    # signed correctly but the weights belong to another network: the shapes are checked
    ddpm = Simulator.load(runs["ddpm"])
    wrong = galgen.write_model(tmp_path / "wrong.galgen", pmf.config, ddpm._params)
    cases["wrong weights"] = (wrong, None, "weight")
    for name, (path, _, msg) in cases.items():
        with pytest.raises(GalgenError) as exc:
            Simulator.load(path)
        assert path.name in str(exc.value) and msg in str(exc.value), (name, str(exc.value))


# ----------------------------------------------------------------------------- files


def test_hdf5_round_trip_in_the_galaxiesml_schema(pmf, tmp_path):
    from galaxiesml_data import open_split

    g = pmf.sample(Z, seed=2, object_id=np.arange(100, 105))
    ds = open_split(g.to_hdf5(tmp_path / "g.hdf5"))
    np.testing.assert_array_equal(np.asarray(ds.images[:]), g.images)
    np.testing.assert_array_equal(np.asarray(ds.redshift[:]), Z)
    np.testing.assert_array_equal(np.asarray(ds.object_id[:]), np.arange(100, 105))


def test_fits_round_trips_with_its_headers_and_no_warnings(pmf, tmp_path):
    from astropy.io import fits

    g = pmf.sample(Z, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither writing nor reading warns
        path = g.to_fits(tmp_path / "g.fits")
        with fits.open(path) as hdul:
            hdul.verify("exception")
            names = [h.name for h in hdul]
            assert names == ["PRIMARY", "HSC-G", "HSC-R", "HSC-I", "HSC-Z", "HSC-Y", "CATALOG"]
            p = hdul[0].header
            assert (p["METHOD"], p["NFE"], p["SEED"], p["NGAL"]) == ("pmf", 1, 2, 5)
            assert p["PIXSCALE"] == pytest.approx(0.168) and p["MAGZP"] == 27.0
            for c, band in enumerate("grizy"):
                h = hdul[f"HSC-{band.upper()}"]
                assert h.header["BAND"] == band and h.header["BUNIT"] == "count"
                assert h.header["FLUXMAG0"] == pytest.approx(10**10.8)
                np.testing.assert_array_equal(h.data, g.images[..., c])
            cat = hdul["CATALOG"].data
            np.testing.assert_array_equal(cat["REDSHIFT"], Z)
            np.testing.assert_array_equal(cat["OBJECT_ID"], np.arange(5))


# ----------------------------------------------------------------------------- GalSim


def test_sample_galsim_profiles_carry_the_stamps_and_the_rng_seeds_them(pmf):
    import galsim
    from astropy.table import Table

    cat = Table({"ra": np.zeros(3), "redshift": Z[:3]})
    objs = pmf.sample_galsim(cat, galsim.BaseDeviate(11))
    again = pmf.sample_galsim({"redshift": Z[:3]}, 11)  # a dict and an int seed work alike
    stamps = pmf.sample(Z[:3], seed=int(galsim.BaseDeviate(11).raw())).images
    assert len(objs) == 3 and list(objs[0]) == ["g", "r", "i", "z", "y"]
    for i, prof in enumerate(objs):
        for c, (band, obj) in enumerate(prof.items()):
            assert isinstance(obj, galsim.InterpolatedImage)
            stamp = stamps[i, ..., c]
            assert obj.flux == pytest.approx(stamp.sum(), rel=1e-5, abs=1e-5)
            # drawn at the model's pixel scale, without a PSF: the stamp itself, pixel by pixel
            drawn = obj.drawImage(nx=16, ny=16, scale=pmf.pixel_scale, method="no_pixel").array
            np.testing.assert_allclose(drawn, stamp, atol=1e-4 * np.abs(stamp).max())
            assert again[i][band].flux == obj.flux
    st = np.array([(0.5,), (1.0,)], dtype=[("zphot", "f8")])
    assert len(pmf.sample_galsim(st, 1, redshift_column="zphot")) == 2
    with pytest.raises(GalgenError, match="no redshift column.*ra"):
        pmf.sample_galsim({"ra": [1.0]}, 1)
    with pytest.raises(GalgenError, match="redshift"):
        pmf.sample_galsim({"redshift": [7.0]}, 1)


def test_galsim_scene_example_places_every_galaxys_flux(pmf):
    """The README's scene example: each band of the scene holds the sum of its galaxies' fluxes
    (all placed inside), and the same seed redraws the same scene."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "examples" / "galsim_scene.py"
    spec = importlib.util.spec_from_file_location("galsim_scene", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    scene, cat = mod.draw_scene(pmf, n=12, size=96, seed=3)
    assert set(scene) == set("grizy") and scene["g"].array.shape == (96, 96)
    # the profiles of the same seed, redrawn: their fluxes add up to each band's total
    import galsim

    rng = galsim.BaseDeviate(3)
    ud = galsim.UniformDeviate(rng)
    for _ in range(3 * 12):
        ud()
    fluxes = np.array([[o.flux for o in p.values()] for p in pmf.sample_galsim(cat, rng)])
    totals = np.array([scene[b].array.sum() for b in "grizy"])
    scale = np.abs(fluxes).sum(axis=0)
    np.testing.assert_allclose(totals, fluxes.sum(axis=0), atol=2e-3 * scale.max())
    again, _ = mod.draw_scene(pmf, n=12, size=96, seed=3)
    np.testing.assert_array_equal(again["r"].array, scene["r"].array)


@pytest.mark.parametrize(
    "override, culprit",
    [
        ("train.steps=abc", "train.steps='abc'"),
        ("train.steps=2.5", "train.steps=2.5"),
        ("train.lr=fast", "train.lr"),
        ("train.batch_size=true", "train.batch_size"),
        ("objective.x=1", "['x']"),
        ('objective.loss="cubic"', "cubic"),
        ("backbone.bogus=1", "bogus"),
        ("data.bogus=1", "data.bogus"),
    ],
)
def test_bad_config_is_refused_before_the_run_directory_exists(runs, tmp_path, override, culprit):
    out = tmp_path / "run"
    with pytest.raises(GalgenError) as exc:
        galgen.train("ddpm", runs["data"], out, preset=None, overrides=[override], resume=False,
                     seed=0)  # fmt: skip
    assert culprit in str(exc.value)
    assert not out.exists()


def test_pixel_weight_alone_trains_with_the_runs_sky_stats(runs, tmp_path):
    """objective.pixel_weight needs the data's sky (mean, std) even without the Gaussian
    baseline: the run passes them, so training does not stop at ddpm_loss's missing-stats error."""
    out = tmp_path / "pw"
    galgen.train(
        "ddpm", runs["data"], out, preset=None, seed=0, resume=False,
        overrides=["train.steps=1", "train.batch_size=4", "objective.pixel_weight=1",
                   "objective.baseline=\"none\""],
    )  # fmt: skip
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["objective"]["pixel_weight"] == 1 and cfg["objective"]["baseline"] == "none"
    assert len(cfg["data_stats"]["mean"]) == 5


def test_mixture_baseline_fits_its_pixel_mixture_at_train_time(runs, tmp_path):
    """objective.baseline="gaussian_mixture": train fits the pixel mixture over the bands on
    the stretched training stamps and stores it in config.json, its component 0 the run's sky
    (mean, diag(std²)); the objective and the sampler read it from there; a config without it is
    refused with the key named."""
    out = tmp_path / "mix"
    galgen.train(
        "ddpm", runs["data"], out, preset="ddpm-cpu", seed=0, resume=False,
        overrides=["train.steps=1", "train.batch_size=4", 'objective.baseline="gaussian_mixture"'],
    )  # fmt: skip
    cfg = json.loads((out / "config.json").read_text())
    stats = cfg["data_stats"]
    w, mu, cov = (np.asarray(a) for a in galgen._simulator.data_stats(cfg))
    assert w.shape == (4,) and mu.shape == (4, 5) and cov.shape == (4, 5, 5)
    np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(mu[0], stats["mean"])
    np.testing.assert_allclose(cov[0], np.diag(np.square(stats["std"])), rtol=1e-12)
    assert np.isfinite(Simulator.load(out).sample(Z[:2], seed=0).images).all()
    del cfg["data_stats"]["mixture"]
    with pytest.raises(GalgenError, match="data_stats.mixture"):
        galgen._simulator.data_stats(cfg)


def test_pmf_refuses_the_mixture_baseline_before_fitting_it(runs, tmp_path, monkeypatch):
    """objective.baseline="gaussian_mixture" is the DDPM's: `galgen train pmf` with it is refused
    by PMFConfig, naming the key, before the run directory exists and without fitting a mixture."""
    import diffusion_core as dc

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted a pixel mixture for a pMF run")

    monkeypatch.setattr(dc, "fit_pixel_mixture", no_fit)
    out = tmp_path / "pmf-mix"
    with pytest.raises(GalgenError, match="objective.*baseline"):
        galgen.train(
            "pmf", runs["data"], out, preset=None, seed=0, resume=False,
            overrides=["train.steps=1", "train.batch_size=4",
                       'objective.baseline="gaussian_mixture"'],
        )  # fmt: skip
    assert not out.exists()


def test_z_balance_weights_the_batches_by_redshift_and_bad_values_are_named(
    runs, tmp_path, monkeypatch
):
    """data.z_balance=p reaches the loader as galaxiesml_data.redshift_weights(z, p) of the
    training split (not the transform, whose fit has no such option); a value outside [0, 1] is
    refused, naming the key, before the run directory exists."""
    import galaxiesml_data as gd

    seen = []

    def spy(*args, **kwargs):
        seen.append(kwargs.get("weights"))
        return real(*args, **kwargs)

    real = gd.batches
    monkeypatch.setattr(gd, "batches", spy)
    over = ["train.steps=2", "train.batch_size=4"]
    galgen.train("ddpm", runs["data"], tmp_path / "zb", preset=None, seed=0, resume=False,
                 overrides=[*over, "data.z_balance=0.5"])  # fmt: skip
    z = gd.open_split(gd.find_split(runs["data"], "training")).redshift[:]
    assert seen and seen[-1] is not None
    np.testing.assert_allclose(seen[-1], gd.redshift_weights(np.asarray(z), 0.5))
    assert json.loads((tmp_path / "zb" / "config.json").read_text())["data"]["z_balance"] == 0.5
    galgen.train("ddpm", runs["data"], tmp_path / "z0", preset=None, seed=0, resume=False,
                 overrides=over)  # fmt: skip
    assert seen[-1] is None  # the default draws every galaxy once per epoch
    for bad in ("1.5", '"high"'):
        out = tmp_path / f"bad{bad}"
        with pytest.raises(GalgenError, match=r"data\.z_balance.*\[0, 1\]"):
            galgen.train("ddpm", runs["data"], out, preset=None, seed=0, resume=False,
                         overrides=[*over, f"data.z_balance={bad}"])  # fmt: skip
        assert not out.exists()


@pytest.mark.parametrize("model", ["pmf", "ddpm"])
def test_asinh_sky_baseline_gets_the_stretch_it_needs(runs, tmp_path, model):
    """objective.baseline="gaussian_asinh" (pMF's and the DDPM's) needs the arcsinh stretch's
    norm: a run trains and samples with it (the norm reaches the objective and the sampler from
    config.json), and with the minmax transform, which has no such norm, it is refused before the
    run directory exists."""
    out = tmp_path / "asinh"
    overrides = ["train.steps=1", "train.batch_size=4", 'objective.baseline="gaussian_asinh"']
    preset = {"pmf": None, "ddpm": "ddpm-tiny-v"}[model]  # ddpm-cpu's stretch options: arcsinh only
    galgen.train(model, runs["data"], out, preset=preset, seed=0, resume=False, overrides=overrides)
    cfg = json.loads((out / "config.json").read_text())
    assert galgen._simulator.data_stats(cfg)[2] == cfg["transform"]["norm"]
    assert np.isfinite(Simulator.load(out).sample(Z[:2], seed=0).images).all()
    bad = tmp_path / "minmax"
    with pytest.raises(GalgenError, match="gaussian_asinh.*arcsinh.*'minmax'"):
        galgen.train(model, runs["data"], bad, preset=preset, seed=0, resume=False,
                     overrides=[*overrides, 'data.transform="minmax"'])  # fmt: skip
    assert not bad.exists()


@pytest.mark.parametrize(
    "bad, culprit",
    [
        ("nan_pixel", r"5x16x16_training_with_morphology.hdf5: 'image' has NaN or inf pixels in row 7\b"),
        ("inf_pixel", r"training_with_morphology.hdf5: 'image' has NaN or inf pixels in row 0, 31;"),
        ("sentinel", r"training_with_morphology.hdf5: 'specz_redshift' .* in row 5 \(-99\)"),
        ("empty", r"training_with_morphology.hdf5: key 'image' holds 0 galaxies; need at least 1"),
        ("truncated", r"training_with_morphology.hdf5 is not a readable HDF5 file \(truncated"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("resume", [False, True])
def test_bad_training_data_is_refused_before_anything_is_written(runs, tmp_path, bad, culprit,
                                                                 resume):  # fmt: skip
    """NaN/inf pixels (which would make the fitted data range [nan, nan]), a -99 redshift (which
    would be fed raw), an empty or a truncated file: one sentence naming the file and rows; no run
    directory is created, and a run resumed onto such data keeps its files byte for byte."""
    import shutil

    import h5py
    from galaxiesml_data import open_split, write_split

    data = tmp_path / "data"
    data.mkdir()
    train_file = data / "5x16x16_training_with_morphology.hdf5"
    src = open_split(runs["data"] / train_file.name)
    img, z = src.images[:], src.redshift.copy()
    if bad == "nan_pixel":
        img[7, 3, 4, 2] = np.nan
    elif bad == "inf_pixel":
        img[[0, 31], 0, 0, 0] = [np.inf, -np.inf]
    elif bad == "sentinel":
        z[5] = -99.0
    if bad == "empty":
        with h5py.File(train_file, "w") as f:
            f["image"] = np.zeros((0, 5, 16, 16), np.float32)
            f["specz_redshift"] = np.zeros(0, np.float32)
    else:
        write_split(train_file, img, z)
    if bad == "truncated":
        train_file.write_bytes(train_file.read_bytes()[:-4096])
    if resume:
        out = tmp_path / "run"
        shutil.copytree(runs["ddpm"], out)
    else:
        out = tmp_path / "new"
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match=culprit) as exc:
        galgen.train("ddpm", data, out, preset=None, seed=0, resume=resume,
                     overrides=["train.steps=4"] if resume else [])  # fmt: skip
    assert "\n" not in str(exc.value)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert resume or not out.exists()


def test_stray_checkpoints_without_a_config_are_not_resumed_silently(runs, tmp_path):
    """A directory with checkpoints but no config.json (a killed run that saved its last step
    after the directory was deleted) used to be trained on from that step under the new config."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(runs["ddpm"] / "checkpoints", out / "checkpoints")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(GalgenError, match=r"checkpoints holds checkpoints but .* no config.json"):
        galgen.train("ddpm", runs["data"], out, preset=None, overrides=[], resume=False, seed=0)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def _full_disk_after(n_bytes):
    """An ``open`` stand-in whose files fail with ENOSPC once ``n_bytes`` have been written."""
    import builtins
    import errno
    import io

    real_open = builtins.open

    class Full(io.FileIO):
        written = 0

        def write(self, b):
            Full.written += len(b)
            if Full.written > n_bytes:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(b)

    def fake_open(file, mode="r", *a, **kw):
        if "w" in mode and "b" in mode:
            return Full(file, "w")
        return real_open(file, mode, *a, **kw)

    return fake_open


@pytest.mark.parametrize("writer", ["hdf5", "fits", "export"])
@pytest.mark.parametrize("failure", ["full_disk", "parent_is_a_file"])
def test_failed_writes_name_the_file_and_change_nothing(
    pmf, tmp_path, monkeypatch, writer, failure
):
    """#18: a full disk or an output path under a regular file. One sentence naming the target;
    the target (here: an older file of the same name) is untouched and no temporary is left."""
    import builtins

    gals = pmf.sample(Z[:2], seed=0)
    write = {"hdf5": gals.to_hdf5, "fits": gals.to_fits, "export": pmf.export}[writer]
    if failure == "full_disk":
        target = tmp_path / f"out.{writer}"
        target.write_bytes(b"an older file")
        if writer == "hdf5":  # HDF5 writes through its own C library, not Python's open
            import h5py

            real = h5py.File

            def full(name, mode="r", *a, **kw):
                f = real(name, mode, *a, **kw)
                if mode in ("w", "a"):
                    f.close()
                    raise OSError(28, "Can't synchronously write data (file write failed)")
                return f

            monkeypatch.setattr(h5py, "File", full)
        else:
            monkeypatch.setattr(builtins, "open", _full_disk_after(100))
        culprit = f"{target}: cannot write (No space left on device)"
    else:
        (tmp_path / "file").write_text("not a directory")
        target = tmp_path / "file" / f"out.{writer}"
        culprit = str(tmp_path / "file")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(GalgenError) as info:
        write(target)
    monkeypatch.undo()
    assert culprit in str(info.value) and "\n" not in str(info.value)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_run_whose_checkpoints_belong_to_another_network_is_one_sentence(runs, tmp_path):
    """#18: a DDPM run's config.json beside a pMF run's checkpoints (copied by hand)."""
    import shutil

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(runs["ddpm"] / "config.json", mixed / "config.json")
    shutil.copytree(runs["pmf"] / "checkpoints", mixed / "checkpoints")
    with pytest.raises(ValueError, match="was written by another network") as info:
        Simulator.load(mixed)
    assert str(mixed / "checkpoints") in str(info.value) and len(str(info.value)) < 400
