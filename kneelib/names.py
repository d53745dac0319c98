"""Names and constants every layer shares: the tissues and their codes, the IWOAI channel map and
split sizes, how nets are named, and the numbers the paper published (docs/reference.md).

This module imports nothing from kneelib: it is the bottom of the layer stack.
"""

from __future__ import annotations

# ---------------------------------------------------------------- tissues

TISSUES = ("femoral_cartilage", "tibial_cartilage", "meniscus")
TISSUE_CODES = {"femoral_cartilage": "F", "tibial_cartilage": "T", "meniscus": "M"}
CODE_TISSUES = {code: tissue for tissue, code in TISSUE_CODES.items()}
TISSUE_NAMES = {code: tissue.replace("_", " ") for tissue, code in TISSUE_CODES.items()}  # "F" -> "femoral cartilage"
# The three unordered tissue pairs, in the order the paper lists them (Fig. 4).
TISSUE_PAIRS = (("F", "T"), ("F", "M"), ("M", "T"))

# ---------------------------------------------------------------- the IWOAI 2019 file format

SEG_CHANNELS = 6
SEG_CHANNEL_NAMES = (
    "femoral_cartilage", "lateral_tibial_cartilage", "medial_tibial_cartilage",
    "patellar_cartilage", "lateral_meniscus", "medial_meniscus",
)
# The paper's three tissues as unions of IWOAI channels; channel 3 (patellar) is unused.
TISSUE_CHANNELS: dict[str, tuple[int, ...]] = {
    "femoral_cartilage": (0,),
    "tibial_cartilage": (1, 2),
    "meniscus": (4, 5),
}
SPLITS = ("train", "valid", "test")
TIMEPOINTS = ("V00", "V01")
# Subjects per split of the OAI iMorphics / IWOAI 2019 data (two timepoints each: 120/28/28 scans).
IWOAI_SUBJECTS = {"train": 60, "valid": 14, "test": 14}
# OAI DESS: 140 mm field of view on a 384 matrix, 0.7 mm sagittal slices.
OAI_DESS_SPACING_MM = (140.0 / 384, 140.0 / 384, 0.7)

# ---------------------------------------------------------------- net names


def tissue_code(tissue: str) -> str:
    """``"femoral_cartilage"`` or ``"F"`` -> ``"F"``."""
    if tissue in TISSUE_CODES:
        return TISSUE_CODES[tissue]
    if tissue in CODE_TISSUES:
        return tissue
    raise ValueError(f"unknown tissue {tissue!r}; expected one of {list(TISSUE_CODES)} or their codes")


def net_name(tissue: str, base: str | None = None) -> str:
    """The paper's name of a net: ``net_name("F")`` -> ``"F(s)"``, ``net_name("T", "F")`` -> ``"T|F(s)"``.

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


def tissue_of(net: str) -> str:
    """The tissue code a net segments: ``"T|F(s)"`` -> ``"T"``, ``"M(s)"`` -> ``"M"``."""
    code = net[0]
    if code not in CODE_TISSUES:
        raise ValueError(f"{net!r} is not a net name like 'F(s)' or 'T|F(s)'")
    return code


SCRATCH_NETS = tuple(net_name(t) for t in TISSUES)  # ("F(s)", "T(s)", "M(s)")

# ---------------------------------------------------------------- the paper's published numbers

# C3: mean distance of a fine-tuned net to its base scratch net, and to the scratch net of its own tissue.
PAPER_HEADLINE = {"to_base": 8.17e-3, "to_own_scratch": 6.45e-2}
# C4: tissue distances, the mean of d(A(s), B|A(s)) and d(B(s), A|B(s)).
PAPER_TISSUE_DISTANCES = {"F-T": 8.13e-3, "F-M": 8.07e-3, "M-T": 8.32e-3}
# C5: the two directions of the F-T distance.
PAPER_FT_DIRECTIONS = {"d(F(s),T|F(s))": 9.56e-3, "d(T(s),F|T(s))": 6.70e-3}
