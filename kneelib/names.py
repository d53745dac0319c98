"""Names and constants every layer shares: the vocabulary of tissues and their codes, each data format's
tissues as unions of its labels (the IWOAI channel map), the IWOAI split sizes, how nets are named, and the
numbers the paper published (docs/reference.md).

This module imports nothing from kneelib: it is the bottom of the layer stack.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

# ---------------------------------------------------------------- tissues

# The vocabulary of tissues a study may segment, with their codes. The order is part of every net's
# identity: ``NetSpec.run_seed`` indexes this tuple, so the paper's three come first (their seeds are those
# of the three-tissue study) and a new tissue is only ever appended.
TISSUE_CODES = {
    "femoral_cartilage": "F", "tibial_cartilage": "T", "meniscus": "M",
    "medial_tibial_cartilage": "TM", "lateral_tibial_cartilage": "TL", "patellar_cartilage": "P",
    "medial_meniscus": "MM", "lateral_meniscus": "ML",
}
ALL_TISSUES = tuple(TISSUE_CODES)
CODE_TISSUES = {code: tissue for tissue, code in TISSUE_CODES.items()}
TISSUE_NAMES = {code: tissue.replace("_", " ") for tissue, code in TISSUE_CODES.items()}  # "F" -> "femoral cartilage"
# The paper's tissues, in the paper's order: the default of ``Profile.tissues``.
PAPER_TISSUES = ("femoral_cartilage", "tibial_cartilage", "meniscus")
# A net name: codes are capitals only (tests/test_names.py), so "|", "(" and "-" can separate them.
_NET = re.compile(r"^([A-Z]+)(?:\|([A-Z]+))?\(s\)$")


def tissue_code(tissue: str) -> str:
    """``"femoral_cartilage"`` or ``"F"`` -> ``"F"``; ValueError naming the value for anything else."""
    if tissue in TISSUE_CODES:
        return TISSUE_CODES[tissue]
    if tissue in CODE_TISSUES:
        return tissue
    raise ValueError(f"unknown tissue {tissue!r}; expected one of {list(TISSUE_CODES)} or their codes "
                     f"{list(CODE_TISSUES)}")


def tissue_name(tissue: str) -> str:
    """``"F"`` or ``"femoral_cartilage"`` -> ``"femoral_cartilage"``; ValueError for an unknown tissue."""
    return CODE_TISSUES[tissue_code(tissue)]


def tissue_index(tissue: str) -> int:
    """Position of a tissue (name or code) in ``ALL_TISSUES``: 0 F, 1 T, 2 M, 3 TM, ... (``NetSpec.run_seed``)."""
    return ALL_TISSUES.index(tissue_name(tissue))


def check_tissues(tissues: Sequence[str]) -> tuple[str, ...]:
    """The tissues of a study as names, in the given order.

    Args:
        tissues: at least two different tissues, as names or codes.

    Raises:
        ValueError naming the value: fewer than two, an unknown tissue, or one listed twice.
    """
    if isinstance(tissues, str) or len(tissues) < 2:
        raise ValueError(f"tissues={tissues!r}: a study needs at least two tissues (fine-tuning goes between them)")
    out = tuple(tissue_name(t) for t in tissues)
    twice = sorted({t for t in out if out.count(t) > 1})
    if twice:
        raise ValueError(f"tissues={list(tissues)!r} lists {twice} more than once")
    return out


def tissue_pairs(tissues: Sequence[str]) -> list[tuple[str, str]]:
    """Every unordered pair of ``tissues`` as codes, each pair in alphabetical order, the pairs in the
    order of ``itertools.combinations``: the paper's F-T, F-M, M-T for its three tissues (Fig. 4)."""
    codes = [tissue_code(t) for t in tissues]
    return [(min(a, b), max(a, b)) for a, b in itertools.combinations(codes, 2)]


def pair_name(a: str, b: str) -> str:
    """The name of a tissue pair (names or codes, either order): ``pair_name("T", "M")`` -> ``"M-T"``."""
    return "-".join(sorted((tissue_code(a), tissue_code(b))))


# ---------------------------------------------------------------- data formats: tissues as labels

# A data format's tissues, each as the union of that format's labels (channels of a one-hot map, or label
# values of an integer map), in ``ALL_TISSUES`` order. A reader of another format adds its own map here; a
# tissue a format does not label is absent from its map, and a profile that asks for it fails when the data
# are read.
IWOAI = "iwoai"
NNUNET = "nnunet"
# OAIZIB-CM (CartiMorph 2024; OAI DESS knees as an nnU-Net raw folder): its label names and values. The
# bones are labelled but are no tissue of the vocabulary; there is no meniscus and no patellar cartilage.
OAIZIB_LABELS = {
    "background": 0, "femur": 1, "femoral cartilage": 2, "tibia": 3,
    "medial tibial cartilage": 4, "lateral tibial cartilage": 5,
}
# Tissues of the vocabulary that are the union of two others: a data set that labels both parts
# provides the whole.
TISSUE_PARTS = {
    "tibial_cartilage": ("medial_tibial_cartilage", "lateral_tibial_cartilage"),
    "meniscus": ("medial_meniscus", "lateral_meniscus"),
}
SEG_CHANNELS = 6
SEG_CHANNEL_NAMES = (
    "femoral_cartilage", "lateral_tibial_cartilage", "medial_tibial_cartilage",
    "patellar_cartilage", "lateral_meniscus", "medial_meniscus",
)
TISSUE_LABELS: dict[str, dict[str, tuple[int, ...]]] = {
    IWOAI: {
        "femoral_cartilage": (0,),
        "tibial_cartilage": (1, 2),
        "meniscus": (4, 5),
        "medial_tibial_cartilage": (2,),
        "lateral_tibial_cartilage": (1,),
        "patellar_cartilage": (3,),
        "medial_meniscus": (5,),
        "lateral_meniscus": (4,),
    },
    # nnU-Net raw folders label with integers named in their dataset.json; the reader
    # (kneelib.data.nnunet) builds each data set's own map from those names. This is the map of
    # OAIZIB-CM's labels (OAIZIB_LABELS), which the nnU-Net phantoms also use.
    NNUNET: {
        "femoral_cartilage": (2,),
        "tibial_cartilage": (4, 5),
        "medial_tibial_cartilage": (4,),
        "lateral_tibial_cartilage": (5,),
    },
}
# SKM-TEA v1.0.0 (``kneelib.data.skmtea``): the ``seg`` dataset of each image file is one-hot in its own
# channel order, not IWOAI's: patellar cartilage comes first and medial before lateral.
SKMTEA = "skm-tea"
SKMTEA_SEG_CHANNEL_NAMES = (
    "patellar_cartilage", "femoral_cartilage", "medial_tibial_cartilage",
    "lateral_tibial_cartilage", "medial_meniscus", "lateral_meniscus",
)
TISSUE_LABELS[SKMTEA] = {
    "femoral_cartilage": (1,),
    "tibial_cartilage": (2, 3),
    "meniscus": (4, 5),
    "medial_tibial_cartilage": (2,),
    "lateral_tibial_cartilage": (3,),
    "patellar_cartilage": (0,),
    "medial_meniscus": (4,),
    "lateral_meniscus": (5,),
}


def tissue_labels(tissue: str, data_format: str = IWOAI) -> tuple[int, ...]:
    """The labels of ``data_format`` whose union is ``tissue`` (name or code): ``tissue_labels("T")`` -> (1, 2).

    Raises ValueError naming the format or the tissue when the format has no such map or does not label it.
    """
    if data_format not in TISSUE_LABELS:
        raise ValueError(f"unknown data format {data_format!r}; known: {sorted(TISSUE_LABELS)}")
    labels = TISSUE_LABELS[data_format]
    name = tissue_name(tissue)
    if name not in labels:
        raise ValueError(f"data format {data_format!r} does not label {name!r}; it labels {list(labels)}")
    return labels[name]


# ---------------------------------------------------------------- the IWOAI 2019 data set

SPLITS = ("train", "valid", "test")
TIMEPOINTS = ("V00", "V01")
# Subjects per split of the OAI iMorphics / IWOAI 2019 data (two timepoints each: 120/28/28 scans).
IWOAI_SUBJECTS = {"train": 60, "valid": 14, "test": 14}
# OAI DESS: 140 mm field of view on a 384 matrix, 0.7 mm sagittal slices.
OAI_DESS_SPACING_MM = (140.0 / 384, 140.0 / 384, 0.7)

# ---------------------------------------------------------------- net names


def net_name(tissue: str, base: str | None = None) -> str:
    """The paper's name of a net: ``net_name("F")`` -> ``"F(s)"``, ``net_name("T", "F")`` -> ``"T|F(s)"``,
    ``net_name("lateral_tibial_cartilage", "TM")`` -> ``"TL|TM(s)"``.

    ``tissue`` and ``base`` are tissue names or codes; ``base`` is the tissue of the scratch net a
    fine-tuned net started from.
    """
    code = tissue_code(tissue)
    if base is None:
        return f"{code}(s)"
    base_code = tissue_code(base)
    if base_code == code:
        raise ValueError(f"a net is not fine-tuned from its own tissue ({code})")
    return f"{code}|{base_code}(s)"


def parse_net_name(net: str) -> tuple[str, str | None]:
    """``"T|F(s)"`` -> ``("T", "F")``, ``"TL(s)"`` -> ``("TL", None)``: the codes of the tissue a net
    segments and of its base (None for a scratch net). ValueError naming ``net`` for anything else."""
    match = _NET.fullmatch(net) if isinstance(net, str) else None
    if match is None or any(c is not None and c not in CODE_TISSUES for c in match.groups()) \
            or match.group(1) == match.group(2):
        raise ValueError(f"{net!r} is not a net name like 'F(s)', 'T|F(s)' or 'TL|TM(s)' "
                         f"(codes {list(CODE_TISSUES)})")
    return match.group(1), match.group(2)


def tissue_of(net: str) -> str:
    """The tissue code a net segments: ``"T|F(s)"`` -> ``"T"``, ``"TL|TM(s)"`` -> ``"TL"``."""
    return parse_net_name(net)[0]


def base_of(net: str) -> str | None:
    """The tissue code of a net's base: ``"T|F(s)"`` -> ``"F"``, ``"M(s)"`` -> None."""
    return parse_net_name(net)[1]


def scratch_nets(tissues: Sequence[str]) -> tuple[str, ...]:
    """The scratch nets of ``tissues``, in their order: ``("F(s)", "T(s)", "M(s)")`` for the paper's."""
    return tuple(net_name(t) for t in tissues)


def finetuned_nets(tissues: Sequence[str]) -> tuple[str, ...]:
    """Every net fine-tuned from one of ``tissues`` to another, grouped by base in ``tissues`` order:
    ``("T|F(s)", "M|F(s)", "F|T(s)", "M|T(s)", "F|M(s)", "T|M(s)")`` for the paper's; N (N - 1) names."""
    return tuple(net_name(t, b) for b in tissues for t in tissues if t != b)


# ---------------------------------------------------------------- the paper's published numbers

# C3: mean distance of a fine-tuned net to its base scratch net, and to the scratch net of its own tissue.
PAPER_HEADLINE = {"to_base": 8.17e-3, "to_own_scratch": 6.45e-2}
# C4: tissue distances, the mean of d(A(s), B|A(s)) and d(B(s), A|B(s)).
PAPER_TISSUE_DISTANCES = {"F-T": 8.13e-3, "F-M": 8.07e-3, "M-T": 8.32e-3}
# C5: the two directions of the F-T distance.
PAPER_FT_DIRECTIONS = {"d(F(s),T|F(s))": 9.56e-3, "d(T(s),F|T(s))": 6.70e-3}
