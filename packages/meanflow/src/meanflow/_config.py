"""Settings of the pixel-MeanFlow objective (thesis Table A.3 defaults)."""

from __future__ import annotations

import dataclasses
from typing import Any

from diffusion_core import DictConfig

VARIANTS = ("algorithm1", "official")
BASELINES = ("none", "gaussian", "gaussian_asinh")
LOSSES = ("l2", "huber")
W_DISTS = ("log_uniform", "uniform", "fixed")


@dataclasses.dataclass(frozen=True)
class PMFConfig(DictConfig):
    """Hyper-parameters of :func:`meanflow.pmf_loss` and :func:`meanflow.sample`.

    Attributes:
        t_clip: the average velocity is ``(x_t - X) / max(t, t_clip)``; keeps ``1/t`` finite (the
            official code's ``clip(t, 0.05, 1)``).
        p_mean, p_std: ``t`` and ``r`` are both drawn from ``sigmoid(N(p_mean, p_std))``;
            ``t = max``, ``r = min``.
        t_uniform: fraction of rows (drawn at random) whose two time draws are uniform on
            ``[0, 1]`` instead of logit-normal. The default logit-normal puts ``t < 0.5`` on
            2.5 % of the rows, so the low-noise maps that the later steps of a multi-step sample
            use are never trained (docs/results.md, diagnosis item 13); 0 = the study's sampler.
        frac_equal: fraction of each batch (its first rows) with ``r = t`` (flow-matching rows).
        w_max: guidance scales are drawn from ``[1, w_max]``.
        w_dist: ``"log_uniform"`` (density ∝ 1/w, ``w = w_max**U``), ``"uniform"``, or
            ``"fixed"`` (every row gets ``w_max``; ``w_max=1`` switches guidance off).
        dropout: probability that a row's redshift is dropped (learned null embedding).
        loss: ``"l2"`` (squared error) or ``"huber"`` (:func:`diffusion_core.huber_loss` with
            ``huber_delta``, the same Huber as ``DDPMConfig``), summed over pixels per example.
        huber_delta: Huber transition point δ.
        adaptive: divide each example's loss by ``sg(loss + adaptive_eps)``; ``None`` (default)
            = the variant's own choice: on for ``"official"`` (the public code always applies
            it), off for ``"algorithm1"``. Read the resolved value from :attr:`use_adaptive`.
        adaptive_eps: the constant of the adaptive weight.
        label_smoothing: redshift noise σ (``z + σ N(0,1)`` clamped to ``[0, 4]``); 0 = off ("NLS").
        variant: ``"algorithm1"`` (thesis Algorithm 1) or ``"official"`` (the public pixel-MeanFlow
            code: guidance velocities and the JVP tangent from the network's instantaneous velocity
            at ``r = t``, the unconditional one at ω = 1, target ``(x_t - x)/max(t, t_clip)``,
            dropout on the ``r = t`` rows, a single logit-normal draw for ``t`` on the ``r = t``
            rows, ``w`` log-uniform on ``[1, 1 + w_max]``, the adaptive weight). It still differs
            from the public code in two places: no guidance interval ``[t_min, t_max]`` is
            sampled or fed to the net, and the guidance velocities come from the u-head at
            ``r = t`` instead of a separate v-head with its own loss. Either way ``w`` reaches the backbone as the scale;
            gen_backbones embeds it as ``1 - 1/w`` like the official code.
        baseline: what the network's output is added to. ``"none"`` (the study): ``X = net``.
            ``"gaussian"``: ``X = X_gauss + net``, where ``X_gauss`` is the exact clean-image map
            of data distributed as an independent Gaussian per band (:func:`gaussian_clean_image`,
            with the data's per-band mean and std passed as ``stats`` to :func:`pmf_loss` and
            :func:`sample`). Its one-step map passes the noise through scaled by the sky σ, so the
            network only has to learn the galaxy, not to reproduce white sky noise.
            ``"gaussian_asinh"``: for asinh-stretched data, the same map with the noise it passes
            through shrunk by the stretch's slope at the network's level
            (:func:`asinh_noise_gate`), so bright cores get the small stretched noise that the
            sky's linear-flux noise has there; ``stats = (mean, std, norm)``. Under
            ``"gaussian"`` the cores keep the sky's stretched noise until the network learns to
            cancel it (docs/results.md, diagnosis item 15).
    """

    t_clip: float = 0.05
    p_mean: float = 0.8
    p_std: float = 0.8
    t_uniform: float = 0.0
    frac_equal: float = 0.5
    w_max: float = 7.0
    w_dist: str = "log_uniform"
    dropout: float = 0.1
    loss: str = "l2"
    huber_delta: float = 1.0
    adaptive: bool | None = None
    adaptive_eps: float = 0.01
    label_smoothing: float = 0.01
    variant: str = "algorithm1"
    baseline: str = "none"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PMFConfig:
        """As :meth:`DictConfig.from_dict`; a stored config's ``t_min`` (this field's name in
        earlier releases) is read as ``t_clip``, so older run directories and model files load."""
        if "t_min" in d and "t_clip" not in d:
            d = {("t_clip" if k == "t_min" else k): v for k, v in d.items()}
        return super().from_dict(d)

    @property
    def use_adaptive(self) -> bool:
        """Whether the adaptive weight applies (``adaptive``, or the variant's default)."""
        return self.variant == "official" if self.adaptive is None else bool(self.adaptive)

    @property
    def guidance_range(self) -> tuple[float, float]:
        """``(lo, hi)``: the guidance scales training draws ``w`` from; the network's ``w`` input
        was never trained outside it (``"fixed"``: only ``w_max``)."""
        if self.w_dist == "fixed":
            return (self.w_max, self.w_max)
        official = self.variant == "official" and self.w_dist == "log_uniform"
        return (1.0, self.w_max + 1.0 if official else self.w_max)

    def __post_init__(self) -> None:
        bad = self._invalid

        if self.variant not in VARIANTS:
            raise bad("variant", f"must be one of {VARIANTS}")
        if self.baseline not in BASELINES:
            raise bad("baseline", f"must be one of {BASELINES}")
        if self.loss not in LOSSES:
            raise bad("loss", f"must be one of {LOSSES}")
        if self.w_dist not in W_DISTS:
            raise bad("w_dist", f"must be one of {W_DISTS}")
        if not 0.0 < self.t_clip < 1.0:
            raise bad("t_clip", "must lie in (0, 1)")
        if self.p_std <= 0:
            raise bad("p_std", "must be positive")
        if not 0.0 <= self.t_uniform <= 1.0:
            raise bad("t_uniform", "must lie in [0, 1]")
        if not 0.0 <= self.frac_equal <= 1.0:
            raise bad("frac_equal", "must lie in [0, 1]")
        if self.w_max < 1.0:
            raise bad("w_max", "must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise bad("dropout", "must lie in [0, 1)")
        if self.huber_delta <= 0:
            raise bad("huber_delta", "must be positive")
        if self.adaptive_eps <= 0:
            raise bad("adaptive_eps", "must be positive")
        if self.label_smoothing < 0:
            raise bad("label_smoothing", "must be >= 0")
