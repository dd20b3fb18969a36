"""The training-engine configuration (`TrainConfig`) and the dict round trip every config shares."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, Self

_OPTIMIZERS = ("adamw", "adam")
_NAN_POLICIES = ("stop", "skip")
_LR_DECAYS = ("none", "cosine")


class DictConfig:
    """Mixin for frozen-dataclass configs: a JSON round trip (`to_dict` / `from_dict`) and `replace`.

    `TrainConfig`, `DDPMConfig` and `meanflow.PMFConfig` use it, so a run's stored JSON always
    loads back through one code path that names unknown keys.
    """

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict of every field."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        """Inverse of `to_dict`; unknown keys raise a `ValueError` naming them."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(
                f"{cls.__name__}: unknown key(s) {unknown}; valid keys: {sorted(names)}"
            )
        return cls(**d)

    def _invalid(self, name: str, why: str) -> ValueError:
        """The one invalid-field error of every config: ``Class.name=value: why``."""
        return ValueError(f"{type(self).__name__}.{name}={getattr(self, name)!r}: {why}")

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class TrainConfig(DictConfig):
    """Everything the training engine needs besides the objective and the data.

    Attributes:
        steps: total number of optimizer steps (= batches consumed) of the run.
        batch_size: global batch size (summed over all devices and hosts).
        lr: peak learning rate, reached after `warmup_steps` linear warm-up.
        warmup_steps: linear warm-up from 0 to `lr` over this many steps (0 = none).
        lr_decay: after warm-up, "none" (constant `lr`, the study's setting) or "cosine"
            (cosine decay to 0 at `steps`; short CPU runs end far closer to a minimum).
        weight_decay: decoupled weight decay of AdamW (ignored by "adam").
        optimizer: "adamw" or "adam".
        b1, b2, eps: Adam moment decays and epsilon.
        grad_clip: clip gradients to this global L2 norm; None = no clipping.
        ema_decay: EMA weight; ema <- decay * ema + (1 - decay) * params after every step.
        seed: base seed of the per-step JAX keys (key of step s = fold_in(key(seed), s)).
        checkpoint_every: save a checkpoint every N steps (and always at the end / interrupt).
        keep_checkpoints: how many most-recent checkpoints to keep (None = all).
        log_every: fetch metrics from the device, write a JSONL line and check for NaN every N steps.
        nan_policy: "stop" (raise naming the step, keep the last good checkpoint) or "skip"
            (leave params unchanged for that step and count it).
        prefetch: number of batches transferred to the device ahead of the running step.
        progress: show a tqdm progress bar.
    """

    steps: int
    batch_size: int
    lr: float = 5e-5
    warmup_steps: int = 0
    lr_decay: Literal["none", "cosine"] = "none"
    weight_decay: float = 0.0
    optimizer: Literal["adamw", "adam"] = "adamw"
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    grad_clip: float | None = None
    ema_decay: float = 0.995
    seed: int = 0
    checkpoint_every: int = 1000
    keep_checkpoints: int | None = 3
    log_every: int = 50
    nan_policy: Literal["stop", "skip"] = "stop"
    prefetch: int = 2
    progress: bool = True

    def __post_init__(self) -> None:
        bad = self._invalid

        for name in ("steps", "batch_size", "checkpoint_every", "log_every"):
            if int(getattr(self, name)) < 1:
                raise bad(name, "must be >= 1")
        if self.warmup_steps < 0:
            raise bad("warmup_steps", "must be >= 0")
        if self.prefetch < 0:
            raise bad("prefetch", "must be >= 0")
        if self.optimizer not in _OPTIMIZERS:
            raise bad("optimizer", f"must be one of {_OPTIMIZERS}")
        if self.lr_decay not in _LR_DECAYS:
            raise bad("lr_decay", f"must be one of {_LR_DECAYS}")
        if self.nan_policy not in _NAN_POLICIES:
            raise bad("nan_policy", f"must be one of {_NAN_POLICIES}")
        if not 0.0 <= self.ema_decay <= 1.0:
            raise bad("ema_decay", "must be in [0, 1]")
        if self.lr <= 0:
            raise bad("lr", "must be > 0")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise bad("grad_clip", "must be > 0 or None")
        if self.keep_checkpoints is not None and self.keep_checkpoints < 1:
            raise bad("keep_checkpoints", "must be >= 1 or None")
