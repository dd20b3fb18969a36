"""gen-backbones: the DDPM baseline U-Net and the pixel-MeanFlow NCSN++ U-Net in Flax NNX.

>>> net = build("pmf-tiny", image_size=32, channels=5)
>>> params = net.init(jax.random.key(0))
>>> y = net.apply(params, x, t, r=r, w=w, z=z, drop=drop)   # (B,H,W,C) -> (B,H,W,C)
"""

from ._api import PRESETS, Backbone, build, forward_flops, param_count
from ._ddpm import DDPMUNet
from ._layers import PADDINGS, SCALAR_EMBEDDINGS
from ._ncsnpp import NCSNppUNet

__all__ = [
    "PADDINGS",
    "PRESETS",
    "SCALAR_EMBEDDINGS",
    "Backbone",
    "DDPMUNet",
    "NCSNppUNet",
    "build",
    "forward_flops",
    "param_count",
]
__version__ = "0.1.0"
