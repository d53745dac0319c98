"""Synthetic training slices shared by the benchmarks: no files, no phantoms, the same every run.

Imported by ``train_step.py`` and ``gpu_check.py`` (run as scripts, so this folder is on ``sys.path``).
"""

from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass
class Preloaded:
    """The attributes :func:`kneelib.nets.train.iterate_batches` reads from a preloaded SliceDataset."""

    images: torch.Tensor  # float32 (N, 1, S, S)
    masks: torch.Tensor   # uint8 (N, 1, S, S)
    preload: bool = True

    def __len__(self) -> int:
        return len(self.images)


def phantom_like(n: int, size: int, seed: int = 0) -> Preloaded:
    """``n`` z-scored-looking slices, each with a bright band (the 'cartilage') and a disk, on noise."""
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
