"""Engine tests on a toy linear-regression objective (see dc_toy.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import dc_toy
import jax
import numpy as np
import optax
import pytest
from diffusion_core import (
    TrainConfig,
    latest_step,
    load_checkpoint,
    load_ema_params,
    make_optimizer,
    step_compiler_options,
    train,
)
from diffusion_core._engine import CPU_STEP_COMPILER_OPTIONS

HERE = Path(__file__).parent


def cfg(**kw) -> TrainConfig:
    base = dict(steps=12, batch_size=8, lr=1e-2, checkpoint_every=4, log_every=2, progress=False)
    return TrainConfig(**{**base, **kw})


def run(tmp_path, name="run", poison=None, **kw):
    return train(
        dc_toy.loss_fn,
        dc_toy.init_params(),
        dc_toy.batches_fn(poison=poison),
        cfg(**kw),
        tmp_path / name,
    )


def test_step_matches_plain_optax_loop(tmp_path):
    """The jit step equals an independent optax loop with keys fold_in(key(seed), step)."""
    config = cfg(steps=6, optimizer="adamw", weight_decay=0.1, grad_clip=1.0, seed=3)
    params = jax.device_put(dc_toy.init_params())
    state = train(dc_toy.loss_fn, params, dc_toy.batches_fn(), config, tmp_path)
    # the caller's arrays survive (the engine donates only its own copies)
    assert all(not x.is_deleted() for x in jax.tree.leaves(params))
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-2, weight_decay=0.1))
    opt = tx.init(params)
    base = jax.random.key(3)
    grad = jax.jit(jax.grad(lambda p, b, k: dc_toy.loss_fn(p, b, k)[0]))
    for s in range(6):
        g = grad(params, dc_toy.batch(s), jax.random.fold_in(base, s))
        upd, opt = tx.update(g, opt, params)
        params = optax.apply_updates(params, upd)
    for a, b in zip(dc_toy.leaves(state.params), dc_toy.leaves(params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert state.step == 6


def test_ema_math(tmp_path):
    """ema_k = d * ema_{k-1} + (1 - d) * params_k with ema_0 = params_0, from saved checkpoints."""
    d = 0.8
    run(tmp_path, steps=5, checkpoint_every=1, keep_checkpoints=None, ema_decay=d)
    ema = dc_toy.leaves(dc_toy.init_params())
    for s in range(1, 6):
        p = dc_toy.leaves(load_checkpoint(tmp_path / "run", s).params)
        ema = [d * e + (1 - d) * q for e, q in zip(ema, p, strict=True)]
    got = dc_toy.leaves(load_checkpoint(tmp_path / "run", 5).ema_params)
    for a, b in zip(got, ema, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert not np.allclose(got[0], dc_toy.leaves(load_checkpoint(tmp_path / "run").params)[0])


def test_checkpoint_round_trip_and_retention(tmp_path):
    state = run(tmp_path, steps=12, checkpoint_every=4, keep_checkpoints=2)
    ckpts = sorted(int(p.name) for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert ckpts == [8, 12] and latest_step(tmp_path / "run") == 12
    tmpl = dc_toy.init_params()
    loaded = load_checkpoint(tmp_path / "run", params_like=tmpl, opt_state_like=state.opt_state)
    assert loaded.step == 12 and loaded.skipped == 0
    assert jax.tree.structure(loaded.opt_state) == jax.tree.structure(state.opt_state)
    for name in ("params", "ema_params", "opt_state"):
        for a, b in zip(dc_toy.leaves(getattr(loaded, name)), dc_toy.leaves(getattr(state, name))):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(jax.random.key_data(loaded.key), jax.random.key_data(state.key))
    with pytest.raises(FileExistsError, match="resume=True"):
        train(dc_toy.loss_fn, tmpl, dc_toy.batches_fn(), cfg(), tmp_path / "run", resume=False)
    ema, step = load_ema_params(tmp_path / "run", params_like=tmpl)  # the EMA alone, newest
    assert step == 12
    for a, b in zip(dc_toy.leaves(ema), dc_toy.leaves(state.ema_params), strict=True):
        np.testing.assert_array_equal(a, b)
    assert load_ema_params(tmp_path / "run", 8)[1] == 8
    raw = load_checkpoint(tmp_path / "run", 8)  # no template: nested dicts
    assert set(raw.params) == {"w", "b"} and raw.step == 8
    with pytest.raises(FileNotFoundError, match="step 3"):
        load_checkpoint(tmp_path / "run", 3)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "empty")


def test_torn_checkpoint_is_ignored(tmp_path):
    """A half-written checkpoint (orbax temp dir, as left by a crash) never replaces the good one."""
    run(tmp_path, steps=8)
    ck = tmp_path / "run" / "checkpoints"
    torn = ck / "12.orbax-checkpoint-tmp-1234567"
    shutil.copytree(ck / "8", torn)
    for f in torn.rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")
    assert latest_step(tmp_path / "run") == 8
    state = run(tmp_path, steps=12)  # resumes from 8
    ref = run(tmp_path, name="ref", steps=12)
    for a, b in zip(dc_toy.leaves(state.params), dc_toy.leaves(ref.params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_exact_resume_after_sigkill(tmp_path):
    """Kill -9 mid-run, resume: bitwise the same params/EMA/opt state as an uninterrupted run."""
    run_dir = tmp_path / "killed"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, str(HERE / "dc_toy.py"), str(run_dir), "30", "21"],
        env=env,
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    k = latest_step(run_dir)
    assert k is not None and 5 <= k < 21, k
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert max(json.loads(x)["step"] for x in lines) > k  # logged past the last checkpoint

    config = TrainConfig(
        steps=30, batch_size=8, lr=1e-2, checkpoint_every=5, log_every=3, progress=False
    )
    resumed = train(dc_toy.loss_fn, dc_toy.init_params(), dc_toy.batches_fn(), config, run_dir)
    ref = train(dc_toy.loss_fn, dc_toy.init_params(), dc_toy.batches_fn(), config, tmp_path / "r")
    assert resumed.step == ref.step == 30
    for name in ("params", "ema_params", "opt_state"):
        a, b = dc_toy.leaves(getattr(resumed, name)), dc_toy.leaves(getattr(ref, name))
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    steps = [json.loads(x)["step"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert (
        steps == sorted(set(steps)) and steps[-1] == 30
    )  # lines after k were dropped, not doubled
    assert json.loads((run_dir / "train_config.json").read_text())["resumed_from_step"] == k


@pytest.mark.parametrize("how", ["keyboard", "sigterm"])
def test_interrupt_checkpoints_then_reraises(tmp_path, how):
    if how == "keyboard":

        def batches(start):
            for i in range(start, 10**6):
                if i == 7:
                    raise KeyboardInterrupt
                yield dc_toy.batch(i)

        expected = KeyboardInterrupt
    else:
        batches = dc_toy.batches_fn(kill_at=7, sig=signal.SIGTERM)
        expected = SystemExit
    with pytest.raises(expected):
        train(dc_toy.loss_fn, dc_toy.init_params(), batches, cfg(steps=20, prefetch=0), tmp_path)
    assert latest_step(tmp_path) == 7  # steps 1..7 consumed batches 0..6
    assert signal.getsignal(signal.SIGTERM) is not None
    state = train(
        dc_toy.loss_fn, dc_toy.init_params(), dc_toy.batches_fn(), cfg(steps=20), tmp_path
    )
    assert state.step == 20 and latest_step(tmp_path) == 20


@pytest.mark.parametrize("kind", [1, 2])  # 1: NaN loss, 2: finite loss but NaN gradient
@pytest.mark.parametrize("log_every", [3, 100])
def test_nan_stop_names_step_and_keeps_last_good_checkpoint(tmp_path, kind, log_every):
    with pytest.raises(FloatingPointError, match=r"at step 8 \(batch index 7\)"):
        run(tmp_path, poison={7: kind}, steps=20, checkpoint_every=5, log_every=log_every)
    assert latest_step(tmp_path / "run") == 5
    good = load_checkpoint(tmp_path / "run")
    assert all(np.isfinite(x).all() for x in dc_toy.leaves(good.params))


def test_nan_skip_counts_and_never_writes_nan(tmp_path):
    state = run(tmp_path, poison={3: 1, 7: 2}, steps=12, nan_policy="skip")
    assert state.skipped == 2 and state.step == 12
    for x in dc_toy.leaves((state.params, state.ema_params)):
        assert np.isfinite(x).all()
    counts = [
        np.asarray(c) for c in jax.tree.leaves(state.opt_state) if np.asarray(c).dtype == np.int32
    ]
    assert counts and all(int(c) == 10 for c in counts)  # Adam's step count moved 10 times, not 12
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["skipped"] == 2 and np.isfinite(last["loss"])


def test_run_dir_files(tmp_path):
    config = cfg(steps=6, log_every=2, lr=0.2)
    seen = []
    train(
        dc_toy.loss_fn,
        dc_toy.init_params(),
        dc_toy.batches_fn(),
        config,
        tmp_path,
        run_info={"objective": {"name": "toy", "beta": 1.0}},
        on_log=seen.append,
    )
    resolved = json.loads((tmp_path / "train_config.json").read_text())
    assert TrainConfig.from_dict(resolved["train"]) == config
    assert resolved["run"]["objective"]["name"] == "toy"
    recs = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [2, 4, 6] and seen == recs
    for r in recs:
        assert {"loss", "mse", "grad_norm", "images_per_s", "skipped", "time_s"} <= set(r)
        assert r["images_per_s"] > 0
    # the logged loss is the mean over the interval of the per-step losses (toy: decreasing)
    assert recs[-1]["mse"] < recs[0]["mse"]


def test_config_validation_and_round_trip():
    c = TrainConfig(steps=10, batch_size=4, grad_clip=1.0, optimizer="adam")
    assert TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(steps=1, batch_size=1, optimizer="sgd")
    with pytest.raises(ValueError, match="nan_policy"):
        TrainConfig(steps=1, batch_size=1, nan_policy="ignore")
    with pytest.raises(ValueError, match="unknown key"):
        TrainConfig.from_dict({"steps": 1, "batch_size": 1, "learning_rate": 1.0})
    assert isinstance(make_optimizer(c), optax.GradientTransformation)


def test_every_config_shares_the_dict_round_trip():
    from diffusion_core import DDPMConfig

    d = DDPMConfig(loss="l2", label_smoothing=0.0)
    assert DDPMConfig.from_dict(json.loads(json.dumps(d.to_dict()))) == d
    assert d.replace(loss="huber") == DDPMConfig(loss="huber", label_smoothing=0.0)
    with pytest.raises(ValueError, match="DDPMConfig: unknown key.*'sigma'"):
        DDPMConfig.from_dict({"sigma": 0.1})
    with pytest.raises(ValueError, match="loss"):  # replace validates again
        d.replace(loss="l1")


def test_bad_batch_shape_is_reported(tmp_path):
    def batches(start):
        yield {"x": np.zeros((3, 4), np.float32), "y": np.zeros(3, np.float32)}

    with pytest.raises(ValueError, match=r"'x' has shape \(3, 4\)"):
        train(dc_toy.loss_fn, dc_toy.init_params(), batches, cfg(), tmp_path)


FOUR_DEVICES = textwrap.dedent(
    """
    import jax, numpy as np, dc_toy
    from jax.sharding import Mesh
    from diffusion_core import TrainConfig, train
    assert jax.device_count() == 4, jax.devices()
    c = TrainConfig(steps=8, batch_size=8, lr=1e-2, checkpoint_every=4, log_every=2,
                    progress=False, grad_clip=1.0)
    p0 = jax.device_put(dc_toy.init_params(), jax.devices()[0])
    s4 = train(dc_toy.loss_fn, p0, dc_toy.batches_fn(), c, "{d}/four")
    assert len(s4.params["w"].sharding.device_set) == 4
    one = Mesh(np.asarray(jax.devices()[:1]), ("data",))
    s1 = train(dc_toy.loss_fn, p0, dc_toy.batches_fn(), c, "{d}/one", mesh=one)  # p0 still alive
    np.savez("{d}/out.npz", *(dc_toy.leaves(s4.params) + dc_toy.leaves(s1.params)))
    try:
        train(dc_toy.loss_fn, dc_toy.init_params(), dc_toy.batches_fn(bs=6),
              c.replace(batch_size=6), "{d}/bad")
    except ValueError as e:
        assert "not divisible" in str(e), e
    else:
        raise AssertionError("batch 6 on 4 devices accepted")
    """
)


def test_four_devices_equal_one(tmp_path):
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
    }
    proc = subprocess.run(
        [sys.executable, "-c", FOUR_DEVICES.format(d=tmp_path)],
        env=env,
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    arrs = list(np.load(tmp_path / "out.npz").values())
    n = len(arrs) // 2
    for a, b in zip(arrs[:n], arrs[n:], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(arrs[0], 0)  # trained


def test_a_delete_killed_midway_never_leaves_an_unreadable_step(tmp_path, monkeypatch):
    """Pruning old checkpoints (keep_checkpoints) used orbax's item-by-item delete: a SIGKILL in
    the middle left e.g. ``7/`` with only ``opt_state`` and ``meta``, listed as a step but not
    loadable (found by galgen-cli/tests/test_crash.py). Now a step is renamed away whole first; a
    delete interrupted after the rename leaves only a hidden leftover, cleared at the next save."""
    from diffusion_core import _checkpoint

    real_rmtree = _checkpoint.shutil.rmtree

    def killed(path, *a, **kw):  # the process dies right after the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(_checkpoint.shutil, "rmtree", killed)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, steps=12, checkpoint_every=4, keep_checkpoints=1)
    ck = tmp_path / "run" / "checkpoints"
    steps = sorted(p.name for p in ck.iterdir() if p.name.isdigit())
    assert steps == ["8"] and (ck / ".deleting-4").is_dir()
    assert latest_step(tmp_path / "run") == 8
    assert load_checkpoint(tmp_path / "run", 8).step == 8
    monkeypatch.setattr(_checkpoint.shutil, "rmtree", real_rmtree)
    state = run(tmp_path, steps=12, checkpoint_every=4, keep_checkpoints=1)  # resumes from 8
    assert state.step == 12
    assert sorted(p.name for p in ck.iterdir()) == ["12"]


def test_failed_checkpoint_write_names_the_dir_and_keeps_the_last_good_one(tmp_path, monkeypatch):
    """#18: a disk that fills up mid-run. Orbax (tensorstore) reports it as a ValueError whose text
    holds the errno; the engine says which directory, why, and which step survives, removes the
    half-written temporary, and the earlier checkpoint still loads."""
    import orbax.checkpoint as ocp

    real_save = ocp.CheckpointManager.save

    def full_disk(self, step, *a, **kw):
        if step == 8:
            torn = Path(self.directory) / "8.orbax-checkpoint-tmp-123"
            torn.mkdir()
            (torn / "params").write_bytes(b"\0" * 10)
            raise ValueError("RESOURCE_EXHAUSTED: Failed to write: [os_error_code='28'] {spec...}")
        return real_save(self, step, *a, **kw)

    monkeypatch.setattr(ocp.CheckpointManager, "save", full_disk)
    with pytest.raises(OSError) as info:
        run(tmp_path, steps=12, checkpoint_every=4)
    msg = str(info.value)
    assert str(tmp_path / "run" / "checkpoints") in msg
    assert "No space left on device" in msg and "last good checkpoint is step 4" in msg
    assert "\n" not in msg and "spec" not in msg
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["4"]
    assert load_checkpoint(tmp_path / "run").step == 4


def test_checkpoint_of_another_network_is_one_sentence(tmp_path):
    """#18: restoring with the template of another network names the run and the first
    parameter that differs instead of orbax's listing of every key."""
    run(tmp_path, steps=4, checkpoint_every=4)
    params = dc_toy.init_params()
    other = {"w_other": jax.tree.leaves(params)[0]}
    with pytest.raises(
        ValueError, match=r"another network \(its parameter tree has other keys"
    ) as e:
        load_ema_params(tmp_path / "run", params_like=other)
    wider = jax.tree.map(lambda x: np.zeros((*x.shape, 2), x.dtype), params)
    with pytest.raises(ValueError, match="another network") as e2:
        load_ema_params(tmp_path / "run", params_like=wider)
    for err in (e, e2):
        assert "checkpoints" in str(err.value) and len(str(err.value)) < 400


def _conv_loss(params, batch, key):
    """A two-layer 3x3 conv net (the layers whose CPU kernels step_compiler_options changes)."""
    conv = lambda x, w: jax.lax.conv_general_dilated(  # noqa: E731
        x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    x = batch["x"] + 0.1 * jax.random.normal(key, batch["x"].shape)
    y = conv(jax.nn.gelu(conv(x, params["w1"])), params["w2"])
    return jax.numpy.mean((y - batch["x"]) ** 2), {}


def test_one_step_of_the_tuned_cpu_step_matches_the_old_formula(tmp_path):
    """The engine's step, compiled with `step_compiler_options` (on the CPU: convolutions by
    Eigen instead of YNNPACK), equals the old formula — gradient compiled with XLA's defaults,
    AdamW, EMA — up to float32 reassociation."""
    rng = np.random.default_rng(0)
    params = {
        "w1": rng.normal(0, 0.2, (3, 3, 3, 8)).astype(np.float32),
        "w2": rng.normal(0, 0.2, (3, 3, 8, 3)).astype(np.float32),
    }
    x = rng.normal(size=(8, 16, 16, 3)).astype(np.float32)
    config = cfg(steps=1, optimizer="adamw", weight_decay=0.1, ema_decay=0.9, seed=5, lr=1e-3)
    state = train(_conv_loss, params, lambda start: iter(lambda: {"x": x}, None), config, tmp_path)
    tx = make_optimizer(config)
    g = jax.jit(jax.grad(lambda p, b, k: _conv_loss(p, b, k)[0]))(
        params, {"x": x}, jax.random.fold_in(jax.random.key(5), 0)
    )
    upd, _ = tx.update(g, tx.init(params), params)
    new = optax.apply_updates(params, upd)
    ema = jax.tree.map(lambda e, p: 0.9 * e + 0.1 * p, params, new)
    for got, want in ((state.params, new), (state.ema_params, ema)):
        for a, b in zip(dc_toy.leaves(got), dc_toy.leaves(want), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(dc_toy.leaves(state.params)[0], params["w1"])
    assert state.step == 1


def test_step_compiler_options(monkeypatch):
    """On the CPU the tuned options apply, unless XLA_FLAGS sets the same option itself."""
    cpu = jax.devices("cpu")
    monkeypatch.setenv("XLA_FLAGS", "")
    opts = step_compiler_options(cpu)
    if opts is not None:  # None only where this jaxlib rejects the option
        assert opts == CPU_STEP_COMPILER_OPTIONS
    (name,) = CPU_STEP_COMPILER_OPTIONS
    monkeypatch.setenv("XLA_FLAGS", f"--{name}=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT")
    assert step_compiler_options(cpu) is None
