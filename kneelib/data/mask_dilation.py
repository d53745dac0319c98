"""A slice dataset whose masks are dilated in-plane by one voxel: the "dilated" rung of the known-relatedness
ladder (``kneelib.study.relatedness``), a task as close to the original as a task can be without being it.

The structuring element is the 3 x 3 cross (4-connectivity, ``scipy.ndimage.generate_binary_structure(2, 1)``),
applied to each 2D slice on its own:

- in-plane only, because the nets see single sagittal slices: the new task should differ from the old one
  in where each slice's own boundary lies, not in which slices carry the tissue at all (a dilation across
  slices would mark tissue on slices whose image shows none);
- the cross, not the 3 x 3 square, because it is the smallest change of a mask that still moves its whole
  boundary: every boundary pixel gains its 4 face neighbours, so the boundary moves by exactly one voxel
  along both in-plane axes (the square would also add the diagonal corners, a sqrt(2)-voxel step there).

"One voxel" is at the resolution the nets see (``Profile.slice_size``), after the slices are resampled.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import Dataset

# The 3 x 3 in-plane cross, as a (1, 1, 3, 3) structuring element for (N, 1, S, S) masks: no growth across
# slices (axis 0) or channels (axis 1).
CROSS = ndimage.generate_binary_structure(2, 1)[None, None]
# What the transform is, for the run key of nets trained on it (``kneelib.study.ladder``).
NAME = "dilate_in_plane:cross3x3:1"


def dilate_in_plane(masks: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Each slice's mask dilated by one voxel with the in-plane 3 x 3 cross (:data:`CROSS`).

    Args:
        masks: 0/1 masks (N, 1, S, S) or one (1, S, S), any dtype.

    Returns: uint8 0/1 masks of the same shape; a mask pixel is set where it or one of its 4 in-plane face
    neighbours was set (pixels beyond the border count as unset).
    """
    array = np.asarray(masks) > 0
    single = array.ndim == 3
    array = array[None] if single else array
    if array.ndim != 4:
        raise ValueError(f"masks must be (N, 1, S, S) or (1, S, S), got shape {tuple(np.shape(masks))}")
    out = torch.from_numpy(ndimage.binary_dilation(array, structure=CROSS).astype(np.uint8))
    return out[0] if single else out


class DilatedMasks(Dataset):
    """``dataset``'s slices with every mask dilated in-plane by one voxel (:func:`dilate_in_plane`).

    Behaves like the :class:`kneelib.data.slices.SliceDataset` it wraps for the training loop: preloaded
    (``images``, ``masks``, the masks dilated once here) when it is, else each mask dilated when it is read
    (``raw_item``, ``__getitem__``); ``scan_ids`` are the wrapped dataset's.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.preload = bool(getattr(dataset, "preload", False))
        self.scan_ids = getattr(dataset, "scan_ids", None)
        self._masks = dilate_in_plane(dataset.masks) if self.preload else None

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def images(self) -> torch.Tensor:
        return self.dataset.images

    @property
    def masks(self) -> torch.Tensor:
        if self._masks is None:
            raise RuntimeError("DilatedMasks.masks exists only for a preloaded dataset")
        return self._masks

    def raw_item(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Image float32 (1, S, S) and dilated mask uint8 (1, S, S)."""
        if self._masks is not None:
            return self.dataset.images[i], self._masks[i]
        image, mask = self.dataset.raw_item(i)
        return image, dilate_in_plane(mask)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.raw_item(i)
        return image, mask.float()
