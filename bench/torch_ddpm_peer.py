"""PyTorch peer of gen_backbones' DDPM U-Net: training images/s on the CPU (optional; needs torch).

The network is Lizarraga et al.'s ``UNet_conditional_conv`` as ``gen_backbones.DDPMUNet``
re-implements it (same widths, GroupNorm(1), erf GELU, bilinear ``align_corners=True``
upsampling, 1x1 conv out, ``Linear(1, time_dim)`` redshift embedding plus a learned null vector),
so that the parameter count equals the JAX preset's exactly. One training step: DDPM
ε-objective (linear β 1e-4..0.02, 1000 steps), smooth-L1 loss, AdamW (lr 5e-5, wd 0.01).

Run by ``bench/cpu_train_vs_torch.py`` as a subprocess with a separate venv's python (torch is
not a dependency of this repository, and this file is never imported by tests or CI):

    /work/torchvenv/bin/python bench/torch_ddpm_peer.py --preset ddpm-paper --size 64 --batch 32

Prints one JSON line: params, seconds per step (median), images/s, threads, torch version.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

#: ch, mid_mult, time_dim of the gen_backbones DDPM presets (keep in sync with PRESETS).
PRESETS = {
    "ddpm-paper": dict(ch=64, mid_mult=8, time_dim=256),
    "ddpm-tiny": dict(ch=12, mid_mult=4, time_dim=64),
}


class DoubleConv(nn.Module):
    def __init__(self, cin, cout, cmid=None, residual=False):
        super().__init__()
        cmid = cmid or cout
        self.residual = residual
        self.double_conv = nn.Sequential(
            nn.Conv2d(cin, cmid, 3, padding=1, bias=False),
            nn.GroupNorm(1, cmid),
            nn.GELU(),
            nn.Conv2d(cmid, cout, 3, padding=1, bias=False),
            nn.GroupNorm(1, cout),
        )

    def forward(self, x):
        return F.gelu(x + self.double_conv(x)) if self.residual else self.double_conv(x)


class Down(nn.Module):
    def __init__(self, cin, cout, emb_dim):
        super().__init__()
        self.maxpool_conv = nn.Sequential(
            nn.MaxPool2d(2), DoubleConv(cin, cin, residual=True), DoubleConv(cin, cout)
        )
        self.emb_layer = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, cout))

    def forward(self, x, t):
        x = self.maxpool_conv(x)
        return x + self.emb_layer(t)[:, :, None, None]


class Up(nn.Module):
    def __init__(self, cin, cout, emb_dim):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.conv = nn.Sequential(
            DoubleConv(cin, cin, residual=True), DoubleConv(cin, cout, cin // 2)
        )
        self.emb_layer = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, cout))

    def forward(self, x, skip, t):
        x = self.conv(torch.cat([skip, self.up(x)], dim=1))
        return x + self.emb_layer(t)[:, :, None, None]


class UNetConditionalConv(nn.Module):
    def __init__(self, channels=5, ch=64, mid_mult=8, time_dim=256):
        super().__init__()
        c1, c2, c3, cm = ch * 2, ch * 4, ch * 4, ch * mid_mult
        self.time_dim = time_dim
        self.inc = DoubleConv(channels, ch)
        self.down1 = Down(ch, c1, time_dim)
        self.down2 = Down(c1, c2, time_dim)
        self.down3 = Down(c2, c3, time_dim)
        self.bot1 = DoubleConv(c3, cm)
        self.bot2 = DoubleConv(cm, cm)
        self.bot3 = DoubleConv(cm, c3)
        self.up1 = Up(c3 + c2, c1, time_dim)
        self.up2 = Up(c1 + c1, ch, time_dim)
        self.up3 = Up(ch + ch, ch, time_dim)
        self.outc = nn.Conv2d(ch, channels, 1)
        self.label_emb = nn.Linear(1, time_dim)
        self.null_emb = nn.Parameter(torch.zeros(time_dim))  # gen_backbones' dropped-label vector

    def pos_encoding(self, t):
        freqs = 1.0 / (10000 ** (torch.arange(0, self.time_dim, 2).float() / self.time_dim))
        arg = t[:, None] * freqs[None, :]
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)

    def forward(self, x, t, z):
        emb = self.pos_encoding(t) + self.label_emb(z[:, None])
        x1 = self.inc(x)
        x2 = self.down1(x1, emb)
        x3 = self.down2(x2, emb)
        x4 = self.bot3(self.bot2(self.bot1(self.down3(x3, emb))))
        h = self.up1(x4, x3, emb)
        h = self.up2(h, x2, emb)
        h = self.up3(h, x1, emb)
        return self.outc(h)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="ddpm-paper", choices=sorted(PRESETS))
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--channels", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5, help="timed steps (after 1 warm-up)")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads; 0 = default")
    ap.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net = UNetConditionalConv(a.channels, **PRESETS[a.preset])
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    opt = torch.optim.AdamW(net.parameters(), lr=5e-5, weight_decay=0.01)
    n_steps = 1000
    betas = torch.linspace(1e-4, 0.02, n_steps)
    alpha_bar = torch.cumprod(1.0 - betas, 0)
    x0 = torch.randn(a.batch, a.channels, a.size, a.size).to(memory_format=fmt)
    z = torch.rand(a.batch) * 4

    def step():
        n = torch.randint(0, n_steps, (a.batch,))
        ab = alpha_bar[n][:, None, None, None]
        eps = torch.randn_like(x0)
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        zs = (z + 0.01 * torch.randn_like(z)).clamp(min=0)
        loss = F.smooth_l1_loss(net(x_t, (n + 1).float(), zs), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss)

    step()
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    s = statistics.median(times)
    out = {
        "preset": a.preset,
        "params": sum(p.numel() for p in net.parameters()),
        "image": f"{a.size}x{a.size}x{a.channels}",
        "batch": a.batch,
        "s_per_step": s,
        "s_per_step_all": times,
        "img_s": a.batch / s,
        "threads": torch.get_num_threads(),
        "channels_last": a.channels_last,
        "torch": torch.__version__,
    }
    assert math.isfinite(s)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
