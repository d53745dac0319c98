"""The reference single-class 2D U-Net (MedSegPy / DOSMA OAI U-Net), in PyTorch.

Levels are named as in the paper, shallowest first:

- ``enc_layer1`` ... ``enc_layer{depth}``: encoder levels; ``enc_layer1`` works at full
  resolution, ``enc_layer{depth}`` is the latent (deepest) level. Each holds ``conv1``,
  ``conv2`` (3x3, 'same', ReLU) and ``bn`` (one batch norm after the pair). A 2x2 max pool
  (no weights) sits between consecutive encoder levels.
- ``dec_layer{depth-1}`` ... ``dec_layer1``: decoder levels, deepest first in the forward
  pass; ``dec_layer1`` is the full-resolution stage next to the output. Each holds ``up``,
  the 3x3 stride-2 transposed convolution that brings the level below up to this level's
  resolution (it belongs to this level, not to the one below), then ``conv1``, ``conv2`` and
  ``bn`` applied to the concatenation [up(x), skip from ``enc_layer{i}``].
- ``head``: the 1x1 convolution to one output channel (logits; apply a sigmoid for
  probabilities).

Every ``state_dict`` key starts with one of these names, e.g. ``enc_layer6.conv2.weight``
or ``dec_layer1.up.weight``; the distance analysis groups weights by that first component.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from kneelib.core.profiles import INITS

# Keras BatchNormalization(momentum=0.95, epsilon=1e-3) in PyTorch's convention.
BN_MOMENTUM = 0.05
BN_EPS = 1e-3


class ConvPair(nn.Module):
    """Two 3x3 'same' convolutions with ReLU, then one batch norm (the reference level).

    Args:
        in_channels: channels of the input.
        out_channels: channels after each convolution.

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        return self.bn(torch.relu(self.conv2(x)))


class UpLevel(ConvPair):
    """A decoder level: transposed conv up by 2, concatenate the skip, then a ConvPair.

    Args:
        in_channels: channels of the deeper level's output (twice ``out_channels``).
        out_channels: channels of this level (and of its skip connection).

    Shapes: x (N, in_channels, H/2, W/2), skip (N, out_channels, H, W) -> (N, out_channels, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(2 * out_channels, out_channels)
        # 3x3, stride 2, 'same': padding 1 plus output_padding 1 doubles H and W exactly.
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1,
                                     output_padding=1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(torch.cat([self.up(x), skip], dim=1))


class UNet2D(nn.Module):
    """Single-class 2D U-Net; the reference is ``depth=6, base_filters=32`` (34,591,777 weights).

    Args:
        depth: number of encoder levels (``enc_layer1..depth``); the decoder has depth-1.
        base_filters: filters of ``enc_layer1``; level i has ``base_filters * 2**(i-1)``.
        in_channels: image channels (1 for DESS).
        seed: if given, He-normal initialization is drawn from this seed (see ``init_he``).
        init: ``"he_normal"`` (PyTorch's, the default) or ``"keras_he_2_1_6"`` (the authors' Keras), see
            ``init_he``.

    Forward: x (N, in_channels, H, W) float -> logits (N, 1, H, W); H and W must be
    divisible by ``2**(depth-1)``.
    """

    def __init__(self, depth: int = 6, base_filters: int = 32, in_channels: int = 1,
                 seed: int | None = None, init: str = "he_normal") -> None:
        super().__init__()
        if depth < 1 or base_filters < 1 or in_channels < 1:
            raise ValueError(f"depth, base_filters, in_channels must be >= 1, got "
                             f"{depth}, {base_filters}, {in_channels}")
        self.depth, self.base_filters, self.in_channels = depth, base_filters, in_channels
        width = [base_filters * 2**i for i in range(depth)]
        for i in range(1, depth + 1):
            setattr(self, f"enc_layer{i}", ConvPair(in_channels if i == 1 else width[i - 2], width[i - 1]))
        for i in range(1, depth):
            setattr(self, f"dec_layer{i}", UpLevel(width[i], width[i - 1]))
        self.head = nn.Conv2d(width[0], 1, 1)
        init_he(self, seed, init)

    def level(self, name: str) -> nn.Module:
        return getattr(self, name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        multiple = 2 ** (self.depth - 1)
        if x.ndim != 4 or x.shape[1] != self.in_channels or x.shape[2] % multiple or x.shape[3] % multiple:
            raise ValueError(f"UNet2D expects (N, {self.in_channels}, H, W) with H, W divisible by "
                             f"{multiple}; got {tuple(x.shape)}")
        skips = []
        for i in range(1, self.depth + 1):
            x = self.level(f"enc_layer{i}")(x if i == 1 else nn.functional.max_pool2d(x, 2))
            skips.append(x)
        for i in range(self.depth - 1, 0, -1):
            x = self.level(f"dec_layer{i}")(x, skips[i - 1])
        return self.head(x)  # (N, 1, H, W) logits


def model_from_state(state: dict[str, torch.Tensor]) -> UNet2D:
    """A UNet2D in eval mode holding ``state``; depth, base filters and input channels are read
    from the state's shapes (``enc_layer1.conv1.weight`` is (base_filters, in_channels, 3, 3)).

    Raises ValueError when ``state`` is not a UNet2D state_dict.
    """
    try:
        base_filters, in_channels = state["enc_layer1.conv1.weight"].shape[:2]
    except KeyError:
        raise ValueError("not a UNet2D state_dict: no enc_layer1.conv1.weight") from None
    depth = max(int(k.split(".")[0].removeprefix("enc_layer")) for k in state if k.startswith("enc_layer"))
    model = UNet2D(depth, int(base_filters), int(in_channels))
    model.load_state_dict(state)
    return model.eval()


def layer_groups(depth: int) -> list[str]:
    """Group names in depth order: enc_layer1..depth, dec_layer{depth-1}..1, head."""
    return ([f"enc_layer{i}" for i in range(1, depth + 1)]
            + [f"dec_layer{i}" for i in range(depth - 1, 0, -1)] + ["head"])


def group_of(param_name: str) -> str:
    """The layer group a state_dict key belongs to: its first dotted component."""
    return param_name.split(".", 1)[0]


def keras_he_2_1_6_(weight: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Keras 2.1.6's ``he_normal``, in place: a normal of std sqrt(2 / fan_in) truncated at +-2 of that std.

    Keras 2.1.6 (``VarianceScaling(scale=2, mode="fan_in", distribution="normal")``) passes
    sqrt(2 / fan_in) straight to a truncated normal; later versions divide it by 0.87962566, the std of a
    standard normal cut at +-2, to restore the He variance. Here it is not restored: the weights' std is
    0.8796 sqrt(2 / fan_in) and no |w| exceeds 2 sqrt(2 / fan_in). fan_in = dim 1 x k x k, as in ``init_he``.

    Args:
        weight: a 4-D conv or transposed-conv weight, overwritten.
        generator: the random stream (``init_he``'s).
    """
    std = math.sqrt(2.0 / (weight.shape[1] * weight.shape[2] * weight.shape[3]))
    return nn.init.trunc_normal_(weight, 0.0, std, -2 * std, 2 * std, generator=generator)


def init_he(model: nn.Module, seed: int | None = None, init: str = "he_normal") -> None:
    """He-normal (fan_in, ReLU gain sqrt(2)) for every conv and transposed-conv weight; zero biases.

    std = sqrt(2 / fan_in). For ``Conv2d`` weights (out, in, k, k), fan_in = in * k * k. For
    ``ConvTranspose2d`` weights (in, out, k, k) PyTorch takes fan_in from dimension 1,
    i.e. out * k * k, which is also what Keras' he_normal gives a Conv2DTranspose kernel.
    Batch norm starts at weight 1, bias 0.

    Args:
        model: the net, initialized in place, its modules in registration order from one generator.
        seed: the generator's seed (None: torch's global stream).
        init: ``"he_normal"``: ``torch.nn.init.kaiming_normal_`` (a plain normal); ``"keras_he_2_1_6"``: the
            authors' Keras 2.1.6 ``he_normal`` (:func:`keras_he_2_1_6_`: truncated at 2 sd, std 0.88 of He's).
    """
    if init not in INITS:
        raise ValueError(f"init={init!r}: use {' or '.join(INITS)}")
    gen = None if seed is None else torch.Generator().manual_seed(int(seed))
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            if init == "he_normal":
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu", generator=gen)
            else:
                keras_he_2_1_6_(m.weight, gen)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def init_head_bias(model: UNet2D, bias: float) -> None:
    """Set the head's bias (a logit) to ``bias``; e.g. -3.0 starts every pixel at sigmoid(-3) = 0.047.

    With the reference zero bias an untrained net predicts probability 0.5 everywhere, and
    soft-Dice training first spends epochs pushing the large background down. Starting the
    sigmoid near the tissue's prevalence (the prior-probability initialization of Lin et al. 2017,
    "Focal loss", section 4.1) skips that plateau. Only this one bias changes, so the He-initialized
    weights, and every weight distance, are untouched.
    """
    if not math.isfinite(bias):
        raise ValueError(f"head bias must be finite, got {bias}")
    with torch.no_grad():
        model.head.bias.fill_(float(bias))
