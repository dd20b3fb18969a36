"""Named configurations: training presets (one model each) and reproduce presets (a whole study).

A training preset is a nested dict with four sections, every leaf overridable with
``--set section.key=value``:

- ``model``: ``"ddpm"`` or ``"pmf"``;
- ``backbone``: ``gen_backbones.build`` arguments (``preset`` name plus overrides);
- ``objective``: ``diffusion_core.DDPMConfig`` or ``meanflow.PMFConfig`` fields;
- ``train``: ``diffusion_core.TrainConfig`` fields;
- ``data``: the image transform (``arcsinh`` or ``minmax``) and its fit options, and
  ``z_balance`` (0 by default: the power of ``galaxiesml_data.redshift_weights`` the training
  batches are drawn with); label smoothing is an objective field.
"""

from __future__ import annotations

import copy
import json
from typing import Any

_DATA = {"transform": "arcsinh"}

#: The study's optimisation setting (thesis Table A.1, the baseline code's AdamW), for the DDPM and
#: every pMF paper preset: the values of ``diffusion_core.ddpm_train_config`` (a literal here, as
#: ``import galgen`` loads no jax; galgen's test_conventions.py asserts the two are equal).
_STUDY_TRAIN = {
    "lr": 5e-5,
    "lr_decay": "none",
    "warmup_steps": 0,
    "optimizer": "adamw",
    "weight_decay": 0.01,
    "grad_clip": None,
    "ema_decay": 0.995,
}

_DDPM_PAPER = {
    "model": "ddpm",
    "backbone": {"preset": "ddpm-paper"},
    "objective": {"loss": "huber", "label_smoothing": 0.01, "dropout": 0.0},
    "train": {"steps": 200_000, "batch_size": 128, **_STUDY_TRAIN},
    "data": dict(_DATA),
}


_DDPM_TINY = {
    "model": "ddpm",
    "backbone": {"preset": "ddpm-tiny"},
    "objective": {"loss": "huber", "label_smoothing": 0.01, "dropout": 0.0},
    "train": {"steps": 1500, "batch_size": 32, "lr": 2e-3, "ema_decay": 0.99},
    "data": dict(_DATA),
}


def _pmf(backbone: str, loss: str, smoothing: float, steps: int, batch: int) -> dict[str, Any]:
    return {
        "model": "pmf",
        "backbone": {"preset": backbone},
        "objective": {"loss": loss, "label_smoothing": smoothing},
        "train": {"steps": steps, "batch_size": batch, **_STUDY_TRAIN},
        "data": dict(_DATA),
    }


TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    # The study's configurations (GPU scale). Table 3's ablation grid is the pmf-* family.
    "ddpm-paper": _DDPM_PAPER,
    "pmf-1m": _pmf("pmf-1m", "l2", 0.01, 200_000, 128),
    "pmf-1m-huber": _pmf("pmf-1m", "huber", 0.01, 200_000, 128),
    "pmf-1m-huber-nls": _pmf("pmf-1m", "huber", 0.0, 200_000, 128),
    "pmf-25m": _pmf("pmf-25m", "l2", 0.01, 200_000, 128),
    "pmf-25m-nls": _pmf("pmf-25m", "l2", 0.0, 200_000, 128),
    # CPU presets: tiny networks and a higher learning rate so a few minutes of training learn.
    "ddpm-tiny": _DDPM_TINY,
    # ddpm-tiny with v-prediction (realism diagnosis item 1 in docs/results.md): the eps-net's
    # x0 estimate is off by ~38 (data std 0.24) at t = 1, which the deterministic solvers integrate.
    "ddpm-tiny-v": {**_DDPM_TINY, "objective": {**_DDPM_TINY["objective"], "prediction": "v"}},
    "pmf-tiny": {
        "model": "pmf",
        "backbone": {"preset": "pmf-tiny"},
        "objective": {"loss": "l2", "label_smoothing": 0.01},
        "train": {"steps": 1500, "batch_size": 32, "lr": 2e-3, "ema_decay": 0.99},
        "data": dict(_DATA),
    },
}

# The recipes the CPU reproduce presets train (docs/results.md, realism diagnosis): the tiny
# nets with v-prediction (DDPM), a larger data.peak (DDPM: stretched data std nearer the unit
# variance of the schedule than the study's ~0.24; removes most of the frame) and
# objective.baseline="gaussian" (both: the net adds to the exact prediction for per-band
# Gaussian sky, so it need not learn the sky noise; pMF's one-step samples get their sky noise
# back).
# The DDPM also embeds z scaled *and* gains its features by it (FiLM, backbone.scale_shift;
# diagnosis item 11): with either alone the net's x0 estimate at t = 1 misses the 4000 A
# colour step of the conditional mean (g - r 0.66 -> 0.33 across z = 0.5); with both it has it.
# Its stretch is linear up to 2 sky sigma (data.softening=2, data.peak=4.5: stretched std 0.91
# on the smoke/cpu stamps, 0.59 with the former softening 1 and peak 2.5; diagnosis item 12):
# with the 1-sigma softening the galaxy cores sit in the arcsinh's log regime, where the net
# leaves sky-like noise that the convex inverse turns into extra, band-dependent light (item 9);
# with FiLM the softer stretch no longer costs the colours.
TRAIN_PRESETS["ddpm-cpu"] = {
    **TRAIN_PRESETS["ddpm-tiny-v"],
    "backbone": {
        **TRAIN_PRESETS["ddpm-tiny-v"]["backbone"],
        "scale_shift": True,
        "scalar_embedding": "scaled",
    },
    "objective": {**TRAIN_PRESETS["ddpm-tiny-v"]["objective"], "baseline": "gaussian"},
    "data": {**_DATA, "softening": 2.0, "peak": 4.5},
}
# pMF also embeds its labels scaled (z x250, 1 - 1/w x1000; diagnosis item 8): with the raw
# sinusoid the cpu run drew one brightness for every redshift (output moved 12 % for z 0.3 -> 3,
# 107 % scaled). A tenth of its time pairs are drawn uniformly (diagnosis item 14): the study's
# logit-normal sampler trains t < 0.5 on 2.5 % of the rows, so every step after the first of a
# multi-step sample used untrained low-noise maps (z < 0.5 fluxes x14 at 4 steps).
# Its baseline's sky noise shrinks with the arcsinh's slope where the net paints a galaxy
# ("gaussian_asinh", diagnosis item 15): under "gaussian" the one-step cores kept the sky's
# stretched noise, 20-46x the real cores' pixel noise at z < 0.35. Gradients are clipped at
# norm 1000 (typical norms 900-5,300): without it one of two seeds blew up mid-run and drew
# dark stamps.
TRAIN_PRESETS["pmf-cpu"] = {
    **TRAIN_PRESETS["pmf-tiny"],
    "backbone": {**TRAIN_PRESETS["pmf-tiny"]["backbone"], "scalar_embedding": "scaled"},
    "objective": {
        **TRAIN_PRESETS["pmf-tiny"]["objective"],
        "baseline": "gaussian_asinh",
        "t_uniform": 0.1,
    },
    "train": {**TRAIN_PRESETS["pmf-tiny"]["train"], "grad_clip": 1000.0},
}

#: The study's Table 3 grid, as overrides of the main pMF run (whose own row is the L2 one).
_PAPER_ABLATIONS = {
    "p-MF 1M Huber": {"objective.loss": "huber"},
    "p-MF 1M Huber-NLS": {"objective.loss": "huber", "objective.label_smoothing": 0.0},
    "p-MF 25M L2": {"backbone.preset": "pmf-25m"},
    "p-MF 25M L2-NLS": {"backbone.preset": "pmf-25m", "objective.label_smoothing": 0.0},
}
#: L2/Huber x label smoothing on/off at one scale (the CPU presets' Table 3).
_LOSS_LS_GRID = {
    "L2-NLS": {"objective.label_smoothing": 0.0},
    "Huber": {"objective.loss": "huber"},
    "Huber-NLS": {"objective.loss": "huber", "objective.label_smoothing": 0.0},
}

#: Training overrides shared by the gpu-short runs: batch 128 (the study's) and a learning rate
#: between the tiny nets' 2e-3 and the study's 5e-5, for a few thousand steps on wider nets.
_GPU_SHORT_TRAIN = {
    "train.batch_size": 128,
    "train.lr": 1e-3,
    "train.warmup_steps": 100,
    "train.ema_decay": 0.999,
    "train.log_every": 100,
    "train.checkpoint_every": 1000,
}

#: What ``galgen reproduce --preset NAME`` runs. ``ddpm_steps`` is the number of ancestral steps
#: of the "DDPM-1000" row (reduced on CPU presets; the report says so). ``bench_repeats``: timed
#: calls per method after the compiling one (default 3; Table 2 reports their median). ``ablations`` maps a
#: Table 3 row label to overrides of the main pMF run (same data, seed and step count unless
#: overridden); ``ablation_base`` labels the main pMF run's own row in that table.
REPRODUCE_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "data": {"n_train": 204_573, "n_val": 40_914, "n_test": 40_914, "size": 64},
        "ddpm": ("ddpm-paper", {}),
        "pmf": ("pmf-1m", {}),
        "n_eval": None,
        "ddpm_steps": 1000,
        "protocol": "statmorph",
        "bench_batch": 64,
        "ablation_base": "p-MF 1M L2",
        "ablations": _PAPER_ABLATIONS,
    },
    # ≤ 2 h on a 2-core CPU: 1,024 matched test galaxies, models trained long enough to learn
    # (DDPM and each pMF run get about the same wall time), and the Table 3 grid at tiny scale.
    "cpu": {
        "data": {"n_train": 8192, "n_val": 256, "n_test": 1024, "size": 32},
        # batches drawn with redshift weights n_bin ** -0.5 (diagnosis item 19): in plain epochs
        # the 0.6 % of training galaxies at z >= 3 never taught the DDPM the g drop-out (g - r
        # ~-0.1 against the real +1.24); rebalanced (4.8 % of the draws) two seeds draw +0.59 /
        # +0.66 with little lost below z = 2. Not in ddpm-cpu itself: at the smoke budget
        # (1,000 steps on 1,024 galaxies) the same weights cost the common redshifts' colours.
        "ddpm": ("ddpm-cpu", {"train.steps": 6000, "data.z_balance": 0.5}),
        "pmf": ("pmf-cpu", {"train.steps": 2500}),
        "n_eval": 1024,
        "ddpm_steps": 1000,
        "protocol": "statmorph",
        "bench_batch": 16,
        "ablation_base": "p-MF tiny L2",
        "ablations": {f"p-MF tiny {k}": v for k, v in _LOSS_LS_GRID.items()},
    },
    "smoke": {
        "data": {"n_train": 1024, "n_val": 64, "n_test": 128, "size": 32},
        "ddpm": ("ddpm-cpu", {"train.steps": 1000}),
        "pmf": ("pmf-cpu", {"train.steps": 600}),
        "n_eval": 128,
        "ddpm_steps": 1000,
        "protocol": "statmorph",
        "bench_batch": 16,
        "bench_repeats": 1,
    },
    # <= 10 min on one H200 with a 16-core host (docs/results.md, "GPU"): 64x64x5 data, a
    # mid-size DDPM (the CPU recipe on a ch=32 U-Net, 3.9M parameters) and pmf-1m, 2,048 test
    # galaxies. Step counts are sized to the time budget, not to convergence.
    "gpu-short": {
        "data": {"n_train": 16384, "n_val": 512, "n_test": 2048, "size": 64},
        "ddpm": ("ddpm-cpu", {"backbone.ch": 32, **_GPU_SHORT_TRAIN, "train.steps": 3000}),
        "pmf": ("pmf-cpu", {"backbone.preset": "pmf-1m", **_GPU_SHORT_TRAIN, "train.steps": 2000}),
        "n_eval": 2048,
        "ddpm_steps": 1000,
        "protocol": "statmorph",
        "bench_batch": 256,
        "bench_repeats": 1,
    },
    "test": {  # the micro end-to-end run of the CLI tests
        "data": {"n_train": 48, "n_val": 8, "n_test": 16, "size": 16},
        "ddpm": ("ddpm-cpu", {"train.steps": 3, "train.batch_size": 8}),
        "pmf": ("pmf-cpu", {"train.steps": 3, "train.batch_size": 8}),
        "n_eval": 16,
        "ddpm_steps": 20,
        "protocol": "paper",
        "bench_batch": 4,
        "ablation_base": "p-MF tiny L2",
        "ablations": {"p-MF tiny Huber-NLS": _LOSS_LS_GRID["Huber-NLS"]},
    },
}


def study_runs(p: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Every training run of reproduce preset ``p``: name -> (model, training preset, overrides).

    Names are ``"ddpm"``, ``"pmf"`` and each Table 3 label; an ablation's overrides are the main
    pMF run's overrides updated with its own, so it differs from that run only where it says.
    """
    runs = {m: (m, p[m][0], dict(p[m][1])) for m in ("ddpm", "pmf")}
    tp, base = p["pmf"]
    for label, over in (p.get("ablations") or {}).items():
        runs[label] = ("pmf", tp, {**base, **over})
    return runs


def parse_value(text: str) -> Any:
    """``--set`` value: JSON if it parses (numbers, true/false/null, lists), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def resolve(preset: str, overrides: dict[str, Any] | list[str] | None = None) -> dict[str, Any]:
    """Return a deep copy of training preset ``preset`` with ``section.key`` overrides applied.

    ``overrides`` is a mapping or a list of ``"section.key=value"`` strings (the CLI's ``--set``).
    Raises ``ValueError`` naming the preset or key when either is unknown.
    """
    if preset not in TRAIN_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(TRAIN_PRESETS)}")
    cfg = copy.deepcopy(TRAIN_PRESETS[preset])
    cfg["preset"] = preset
    return apply_overrides(cfg, overrides)


def apply_overrides(
    cfg: dict[str, Any], overrides: dict[str, Any] | list[str] | None
) -> dict[str, Any]:
    """Apply ``section.key`` overrides (mapping or ``"section.key=value"`` strings) in place."""
    items: list[tuple[str, Any]]
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        items = []
        for text in overrides or []:
            key, sep, value = text.partition("=")
            if not sep:
                raise ValueError(f"--set {text!r}: expected section.key=value")
            items.append((key.strip(), parse_value(value.strip())))
    for key, value in items:
        section, dot, leaf = key.partition(".")
        if not dot or section not in ("backbone", "objective", "train", "data"):
            raise ValueError(
                f"--set {key}: key must be backbone.*, objective.*, train.* or data.* (got {key!r})"
            )
        cfg[section][leaf] = value
    return cfg
