"""What the benchmarks time, in one place: synthetic slices, the plain and the suite's training loop, their config
and the FLOP count of one step.

Imported by ``train_step.py`` and ``gpu_check.py`` (run as scripts, so this folder is on ``sys.path``), so the two
time the same loops: the config comes from a profile through :func:`kneelib.nets.run.train_config`, as the suite
builds it, and the plain loop trains with that config's learning rate, Adam constants and loss reduction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from kneelib.core.profiles import get_profile
from kneelib.nets import train
from kneelib.nets.losses import soft_dice_loss
from kneelib.nets.run import NetSpec, train_config
from kneelib.nets.train import TrainConfig
from kneelib.nets.unet import UNet2D

TISSUE = "femoral_cartilage"
RECIPE_PROFILE = "paper"  # the recipe every benchmark loop trains with, at the benchmark's own shape

Loop = Callable[[], None]  # one timed repeat: a pass of optimizer steps over the data
ModelWrapper = Callable[[torch.nn.Module], torch.nn.Module]  # e.g. torch.compile; the identity by default


# ------------------------------------------------------------------ inputs


@dataclasses.dataclass
class Preloaded:
    """The attributes :func:`kneelib.nets.train.iterate_batches` reads from a preloaded SliceDataset."""

    images: torch.Tensor  # float32 (N, 1, S, S)
    masks: torch.Tensor   # uint8 (N, 1, S, S)
    preload: bool = True

    def __len__(self) -> int:
        return len(self.images)


def phantom_like(n: int, size: int, seed: int = 0) -> Preloaded:
    """``n`` z-scored-looking slices, each with a bright band (the 'cartilage') and a disk, on noise; no files,
    the same every run."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    centre = torch.rand(n, 2, generator=g) * 0.8 - 0.4
    radius = torch.rand(n, generator=g) * 0.2 + 0.3
    dist = ((yy - centre[:, 0, None, None]) ** 2 + (xx - centre[:, 1, None, None]) ** 2).sqrt()
    band = (dist - radius[:, None, None]).abs() < 0.04
    image = 1.5 * band.float() + 0.7 * (dist < radius[:, None, None]).float()
    image = image + 0.4 * torch.randn(n, size, size, generator=g)
    image = (image - image.mean()) / image.std()
    return Preloaded(image[:, None].contiguous(), band[:, None].to(torch.uint8))


# ------------------------------------------------------------------ the config


def step_config(depth: int, filters: int, size: int, batch: int, precision: str = "auto") -> TrainConfig:
    """The training config of one scratch net: the ``paper`` profile's recipe at this net and slice size, built
    by :func:`kneelib.nets.run.train_config` exactly as the suite builds the config of ``F(s)``."""
    profile = get_profile(RECIPE_PROFILE, depth=depth, base_filters=filters, slice_size=size, batch_size=batch,
                          precision=precision)
    return train_config(profile, NetSpec(TISSUE))


def grad_scaler(dtype: torch.dtype | None, device: torch.device) -> torch.amp.GradScaler | None:
    """The loss scaler the suite's ``fit`` uses: fp16 on CUDA only."""
    return torch.amp.GradScaler("cuda") if dtype == torch.float16 and device.type == "cuda" else None


# ------------------------------------------------------------------ the loops


def _unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    return model


def plain_loop(cfg: TrainConfig, data: Preloaded, device: torch.device, *, channels_last: bool = False,
               dtype: torch.dtype | None = None, fused: bool = False, set_to_none: bool = False,
               wrap: ModelWrapper = _unwrapped) -> Loop:
    """The loop a user would write: NCHW, fp32, ``opt.zero_grad()``, one ``torch.optim.Adam`` over all
    parameters, batches sliced from tensors. Same learning rate, Adam constants and loss as ``cfg``; each option
    turns on one of the suite's techniques (``dtype``: autocast to it)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = UNet2D(cfg.depth, cfg.base_filters, seed=cfg.seed).to(device).to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.adam_betas, eps=cfg.adam_eps,
                           **({"fused": True} if fused else {}))
    net = wrap(model)
    images, masks = data.images, data.masks.float()
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    batch = cfg.batch_size

    def run() -> None:
        model.train()
        for start in range(0, len(images), batch):
            x, y = images[start:start + batch], masks[start:start + batch]
            opt.zero_grad(set_to_none=True) if set_to_none else opt.zero_grad()
            with train.autocast(device, dtype):
                loss = soft_dice_loss(net(x), y, reduction=cfg.loss_reduction)
            loss.backward()
            opt.step()

    return run


def suite_loop(cfg: TrainConfig, data: Preloaded, device: torch.device, wrap: ModelWrapper = _unwrapped) -> Loop:
    """kneelib's own step, set up as :func:`kneelib.nets.train.fit` sets it up: the model in channels_last, the
    per-level Adam of ``make_optimizer``, autocast to ``cfg.precision``, ``train_epoch`` over ``iterate_batches``."""
    model = train.build_model(cfg, None).to(device).to(memory_format=torch.channels_last)
    opt = train.make_optimizer(model, cfg)
    dtype = train.autocast_dtype(cfg.precision, device)
    scaler = grad_scaler(dtype, device)
    net = wrap(model)
    order = torch.arange(len(data), device=data.images.device)

    def run() -> None:
        batches = train.iterate_batches(data, order, cfg.batch_size)
        train.train_epoch(net, opt, batches, device, dtype, scaler, loss_reduction=cfg.loss_reduction)

    return run


# ------------------------------------------------------------------ work per step


def step_flops(cfg: TrainConfig, device: torch.device) -> tuple[int, int]:
    """FLOPs of one forward, and of one forward + backward, of a batch of ``cfg`` (FlopCounterMode: 2 per
    multiply-add of convolutions, transposed convolutions and their gradients; Adam's element-wise work not
    counted)."""
    model = UNet2D(cfg.depth, cfg.base_filters, seed=0).to(device)
    shape = (cfg.batch_size, 1, cfg.slice_size, cfg.slice_size)
    x = torch.randn(shape, device=device)
    y = (torch.rand(shape, device=device) > 0.9).float()
    with FlopCounterMode(display=False) as counter:
        loss = soft_dice_loss(model(x), y, reduction=cfg.loss_reduction)
    forward = counter.get_total_flops()
    with FlopCounterMode(display=False) as counter:
        loss.backward()
    return forward, forward + counter.get_total_flops()
