"""CLI behaviour: help, one-line errors, the micro end-to-end `reproduce`, and `--resume`."""

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from galgen_cli.cli import app
from typer.testing import CliRunner

runner = CliRunner()

COMMANDS = [
    [],
    ["data"],
    ["data", "synth"],
    ["data", "info"],
    ["data", "validate"],
    ["train"],
    ["sample"],
    ["export"],
    ["evaluate"],
    ["bench"],
    ["reproduce"],
]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "galgen")
def test_help(cmd):
    res = runner.invoke(app, [*cmd, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage" in res.output


def test_help_is_fast_and_imports_nothing_heavy():
    code = (
        "import sys, galgen_cli.cli; heavy = [m for m in ('jax', 'flax', 'statmorph', 'galsim', "
        "'h5py') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _one_line_error(res, *fragments):
    assert res.exit_code != 0
    lines = [line for line in res.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, res.output
    assert "Traceback" not in res.output
    for f in fragments:
        assert f in lines[0].replace("\n", ""), lines[0]


def test_missing_data_dir(tmp_path):
    missing = tmp_path / "nope"
    res = runner.invoke(
        app, ["train", "ddpm", "--data", str(missing), "--out", str(tmp_path / "r")]
    )
    _one_line_error(res, "nope")


def test_unknown_data_option_names_the_key_and_writes_nothing(micro, tmp_path):
    out = tmp_path / "r"
    res = runner.invoke(
        app,
        ["train", "ddpm", "--data", str(micro / "data"), "--out", str(out),
         "--set", "data.bogus=1"],
    )  # fmt: skip
    _one_line_error(res, "data.bogus", "peak")
    assert not out.exists()


def test_unknown_method(tmp_path):
    res = runner.invoke(app, ["sample", str(tmp_path), "--method", "rk45", "--out", "x.h5"])
    _one_line_error(res, "rk45")


def test_corrupt_hdf5(tmp_path):
    bad = tmp_path / "bad.hdf5"
    bad.write_bytes(b"this is not an HDF5 file at all" * 10)
    res = runner.invoke(app, ["data", "info", str(bad)])
    _one_line_error(res, "bad.hdf5")
    res = runner.invoke(
        app,
        ["evaluate", "--real", str(bad), "--generated", str(bad), "--out", str(tmp_path / "ev")],
    )
    _one_line_error(res, "bad.hdf5")


def test_run_dir_without_checkpoint(tmp_path):
    (tmp_path / "run").mkdir()
    res = runner.invoke(app, ["sample", str(tmp_path / "run"), "--out", str(tmp_path / "g.h5")])
    _one_line_error(res, "run")


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    out = tmp_path_factory.mktemp("repro")
    res = runner.invoke(app, ["reproduce", "--preset", "test", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


METHOD_ROWS = ["DDPM", "DDIM", "DEIS-AB2", "DPM++2M", "p-MF 1-step"]


def test_reproduce_micro_writes_both_tables(micro):
    report = (micro / "report.md").read_text()
    t1 = report.split("## Table 1")[1].split("## Table 2")[0]
    t2 = report.split("## Table 2")[1].split("## Table 3")[0]
    for name in METHOD_ROWS:
        assert f"| {name}" in t1, name
        assert f"| {name}" in t2, name
    assert "20 ancestral steps" in report  # the reduced DDPM is disclosed
    assert f"({os.cpu_count()} cores)" in report  # the machine is named
    for run in (micro / "runs").iterdir():  # each run's recipe, option by option
        cfg = json.loads((run / "config.json").read_text())
        head = f"- Run `{run.name}` (preset `{cfg.get('preset', 'custom')}`): "
        line = report.split(head)[1].split("\n")[0]
        for k, v in {**cfg["backbone"], **cfg["objective"], **cfg["train"]}.items():
            assert (f"{v}" if k in ("preset", "loss") else f"{k} {v}") in line or (
                k in ("steps", "batch_size", "lr") and f"{v}" in line
            ), (run.name, k)
    for fig in ("histograms.png", "binned_means.png", "samples.png"):
        assert (micro / "eval" / "figures" / fig).stat().st_size > 1000
    # every stage's wall time is in the report
    stages = report.split("## Stage wall times")[1].split("## Figures")[0]
    for rec in (micro / "stages").glob("*.json"):
        assert f"| {rec.stem} |" in stages


def test_reproduce_micro_ablation_table(micro):
    report = (micro / "report.md").read_text()
    t3 = report.split("## Table 3")[1].split("\n## ")[0].split("**Ratio")[0]  # its first table
    rows = [line.split("|")[1].strip() for line in t3.splitlines() if line.startswith("| p-MF")]
    assert rows == ["p-MF tiny L2", "p-MF tiny Huber-NLS"]
    # the base row is the main pMF run's one-step sample; the variant is its own run
    main = json.loads((micro / "runs" / "pmf" / "config.json").read_text())
    var = json.loads((micro / "runs" / "pmf-p_mf_tiny_huber_nls" / "config.json").read_text())
    assert main["objective"]["loss"] == "l2" and main["objective"]["label_smoothing"] > 0
    assert var["objective"] == {**main["objective"], "loss": "huber", "label_smoothing": 0.0}
    assert var["train"] == main["train"] and var["backbone"] == main["backbone"]
    with h5py.File(micro / "samples" / "p_mf_tiny_huber_nls.hdf5") as f:
        assert int(f.attrs["nfe"]) == 1
        assert f.attrs["model"].endswith("pmf-p_mf_tiny_huber_nls")


def test_generated_files_are_in_the_real_schema_and_matched(micro):
    from galaxiesml_data import open_split

    test = open_split(next((micro / "data").glob("*_testing_with_morphology.hdf5")))
    gen_path = micro / "samples" / "dpm__2m.hdf5"
    gen = open_split(gen_path)
    assert gen.images.shape[1:] == test.images.shape[1:]
    np.testing.assert_allclose(gen.redshift[:], test.redshift[: len(gen)])
    with h5py.File(gen_path) as f:
        assert f["image"].shape[1] == 5  # channels-first on disk, like GalaxiesML
        assert f.attrs["method"] == "dpmpp_2m" and int(f.attrs["nfe"]) == 30


def test_reproduce_skips_finished_stages(micro):
    # an ablation run interrupted before its stage record was written resumes from its checkpoint
    (micro / "stages" / "train-p_mf_tiny_huber_nls.json").unlink()
    res = runner.invoke(app, ["reproduce", "--preset", "test", "--out", str(micro)])
    assert res.exit_code == 0, res.output
    assert res.output.count("skip") >= 8
    assert "done train-p_mf_tiny_huber_nls" in res.output


def test_resume_continues_training(micro, tmp_path):
    data = micro / "data"
    run = tmp_path / "run"
    args = [
        "train",
        "ddpm",
        "--data",
        str(data),
        "--out",
        str(run),
        "--set",
        "train.steps=2",
        "--set",
        "train.batch_size=4",
        "--set",
        "train.checkpoint_every=1",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    again = runner.invoke(app, args)  # a finished run is never silently overwritten
    _one_line_error(again, "--resume")
    res = runner.invoke(
        app,
        [
            "train",
            "ddpm",
            "--data",
            str(data),
            "--out",
            str(run),
            "--resume",
            "--set",
            "train.steps=4",
        ],
    )
    assert res.exit_code == 0, res.output
    import diffusion_core as dc

    assert dc.latest_step(run) == 4
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["steps"] == 4 and cfg["environment"]["versions"]["jax"]


def test_sample_matches_the_library_and_export_travels(micro, tmp_path):
    """`galgen sample` is `Simulator.sample` + a file; `galgen export` makes a model file that
    samples identically without the run or its data (`--data` supplies the test redshifts)."""
    import galgen
    from galaxiesml_data import open_split

    run = micro / "runs" / "pmf"
    out = tmp_path / "gen.hdf5"
    args = ["--redshifts", "0.5,1.5,3.0", "--seed", "7", "--format", "fits"]
    res = runner.invoke(app, ["sample", str(run), "--out", str(out), *args])
    assert res.exit_code == 0, res.output
    want = galgen.Simulator.load(run).sample([0.5, 1.5, 3.0], seed=7)
    np.testing.assert_array_equal(np.asarray(open_split(out).images[:]), want.images)
    from astropy.io import fits

    with fits.open(out.with_suffix(".fits")) as hdul:
        np.testing.assert_array_equal(hdul["HSC-R"].data, want.images[..., 1])
        assert hdul[0].header["METHOD"] == "pmf" and hdul[0].header["NFE"] == 1
    model = tmp_path / "pmf.galgen"
    res = runner.invoke(app, ["export", str(run), str(model)])
    assert res.exit_code == 0, res.output
    out2 = tmp_path / "gen2.hdf5"
    res = runner.invoke(app, ["sample", str(model), "--out", str(out2), *args[:4]])
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(np.asarray(open_split(out2).images[:]), want.images)
    # a model file records no data directory: 'test' redshifts need --data, said in one line
    res = runner.invoke(app, ["sample", str(model), "--out", str(tmp_path / "t.hdf5")])
    _one_line_error(res, "--data")
    assert not (tmp_path / "t.hdf5").exists()
    res = runner.invoke(
        app,
        ["sample", str(model), "--out", str(tmp_path / "t.hdf5"), "--data", str(micro / "data"),
         "--n", "3"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert len(open_split(tmp_path / "t.hdf5")) == 3


@pytest.mark.parametrize(
    "extra, culprit",
    [
        (["--steps", "0"], "steps=0"),
        (["--method", "ddim"], "needs a DDPM"),
        (["--redshifts", "0.5,nan"], "redshift[1]"),
        (["--redshifts", "0.5,9"], "redshift[1] = 9; redshifts must be finite and in [0, 4]"),
        (["--n", "0"], "--n 0"),
    ],
)
def test_sample_bad_options_write_nothing(micro, tmp_path, extra, culprit):
    out = tmp_path / "g.hdf5"
    res = runner.invoke(app, ["sample", str(micro / "runs" / "pmf"), "--out", str(out), *extra])
    _one_line_error(res, culprit)
    assert not out.exists()


@pytest.mark.parametrize("bad", ["empty", "truncated", "nan_train", "sentinel_train"])
def test_bad_files_are_one_line_naming_the_path_and_nothing_is_created(tmp_path, bad):
    """#18: an empty or truncated HDF5 given to `evaluate`, NaN pixels or a -99 redshift in the
    training file given to `train`: one line naming the file (and row), exit != 0, no --out."""
    from galaxiesml_data import write_split

    rng = np.random.default_rng(0)
    img, z = rng.normal(size=(8, 16, 16, 5)).astype(np.float32), np.full(8, 0.5, np.float32)
    data = tmp_path / "data"
    good = write_split(data / "5x16x16_testing_with_morphology.hdf5", img, z)
    target = data / "gen.hdf5"
    if bad == "empty":
        write_split(target, img[:0], z[:0])
        fragments = [f"{target}: key 'image' holds 0 galaxies"]
    elif bad == "truncated":
        write_split(target, img, z)
        target.write_bytes(target.read_bytes()[:-1000])
        fragments = [f"{target} is not a readable HDF5 file (truncated"]
    else:
        target = data / "5x16x16_training_with_morphology.hdf5"
        if bad == "nan_train":
            img[6, 1, 2, 3] = np.nan
        else:
            z[3] = -99.0
        write_split(target, img, z)
        row = "row 6;" if bad == "nan_train" else "row 3 (-99)"
        fragments = [str(target), row]
    out = tmp_path / "out"
    if bad in ("empty", "truncated"):
        args = ["evaluate", "--real", str(good), "--generated", str(target), "--out", str(out)]
    else:
        args = ["train", "ddpm", "--data", str(data), "--out", str(out)]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    res = runner.invoke(app, args)
    _one_line_error(res, *fragments)
    assert not out.exists()
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("cmd", ["train", "sample", "export", "evaluate", "synth"])
def test_output_that_cannot_be_written_is_one_line_and_changes_nothing(micro, tmp_path, cmd):
    """#18: --out below a regular file (what a read-only or missing mount looks like to a
    writer, and testable as any user): one line naming the path, nothing created or changed."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a directory")
    out = blocker / "out"
    test = next((micro / "data").glob("*_testing_with_morphology.hdf5"))
    gen = next((micro / "samples").glob("*.hdf5"))
    args = {
        "train": ["train", "ddpm", "--data", str(micro / "data"), "--out", str(out)],
        "sample": ["sample", str(micro / "runs" / "pmf"), "--out", str(out / "g.hdf5"), "--n", "2"],
        "export": ["export", str(micro / "runs" / "pmf"), str(out / "m.galgen")],
        "evaluate": ["evaluate", "--real", str(test), "--generated", str(gen), "--out", str(out)],
        "synth": ["data", "synth", str(out), "--n-train", "4", "--n-val", "0", "--n-test", "0",
                  "--size", "16", "--workers", "1"],
    }[cmd]  # fmt: skip
    watched = [tmp_path, micro / "runs", micro / "data", micro / "samples"]
    before = {p: p.read_bytes() for d in watched for p in d.rglob("*") if p.is_file()}
    res = runner.invoke(app, args)
    _one_line_error(res, str(blocker))
    assert {p: p.read_bytes() for d in watched for p in d.rglob("*") if p.is_file()} == before
