"""`galgen.train(cpu_devices=2)`: one CPU split into two JAX devices trains data-parallel, gives
the run a one-device process trains (up to float summation order), and a batch the split does
not divide falls back to one device instead of failing."""

import json
import os
import subprocess
import sys
import textwrap

import galgen
import jax
import numpy as np

SPLIT = textwrap.dedent(
    """
    import json, sys, galgen, jax
    data, two, odd = sys.argv[1:4]
    kw = dict(preset=None, seed=0, resume=False, cpu_devices=2)
    s = galgen.train("pmf", data, two, overrides=["train.steps=2", "train.batch_size=4"], **kw)
    o = galgen.train("pmf", data, odd, overrides=["train.steps=2", "train.batch_size=3"], **kw)
    print(json.dumps({"cpu": jax.device_count(), "two": s["devices"], "odd": o["devices"]}))
    """
)
# XLA_FLAGS' device count would win over the split
ENV = {**{k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}, "JAX_PLATFORMS": "cpu"}


def test_two_cpu_devices_train_the_one_device_run(tmp_path):
    assert jax.device_count() == 1  # the reference below runs on one device
    data = tmp_path / "data"
    galgen.synth(data, n_train=32, n_val=8, n_test=8, size=16, seed=0, workers=1)
    proc = subprocess.run(
        [sys.executable, "-c", SPLIT, str(data), str(tmp_path / "two"), str(tmp_path / "odd")],
        capture_output=True, text=True, timeout=600, env=ENV,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got == {"cpu": 2, "two": 2, "odd": 1}
    cfg = json.loads((tmp_path / "two" / "config.json").read_text())
    assert cfg["environment"]["n_devices"] == 2

    one = galgen.train(
        "pmf", data, tmp_path / "one", preset=None, seed=0, resume=False,
        overrides=["train.steps=2", "train.batch_size=4"],
    )  # fmt: skip
    assert one["devices"] == 1
    z = np.array([0.2, 1.0, 3.0], np.float32)
    a = galgen.Simulator.load(tmp_path / "two").sample(z, seed=1).images
    b = galgen.Simulator.load(tmp_path / "one").sample(z, seed=1).images
    assert not np.array_equal(a, galgen.Simulator.load(tmp_path / "odd").sample(z, seed=1).images)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(b).max()))
