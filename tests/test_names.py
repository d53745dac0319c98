"""kneelib.names: the tissue vocabulary, its codes, net names and tissue pairs, and the data formats' label maps."""

from __future__ import annotations

import pytest

from kneelib import names
from kneelib.names import (
    ALL_TISSUES,
    PAPER_TISSUES,
    base_of,
    check_tissues,
    finetuned_nets,
    net_name,
    pair_name,
    parse_net_name,
    scratch_nets,
    tissue_code,
    tissue_index,
    tissue_labels,
    tissue_name,
    tissue_of,
    tissue_pairs,
)

CODES = {"femoral_cartilage": "F", "tibial_cartilage": "T", "meniscus": "M", "medial_tibial_cartilage": "TM",
         "lateral_tibial_cartilage": "TL", "patellar_cartilage": "P", "medial_meniscus": "MM",
         "lateral_meniscus": "ML"}


def test_vocabulary_and_codes():
    assert {t: tissue_code(t) for t in ALL_TISSUES} == CODES
    # the paper's three first, in the paper's order: NetSpec.run_seed indexes this order
    assert ALL_TISSUES[:3] == PAPER_TISSUES == ("femoral_cartilage", "tibial_cartilage", "meniscus")
    assert [tissue_index(t) for t in ("F", "tibial_cartilage", "M", "TM")] == [0, 1, 2, 3]
    for tissue, code in CODES.items():
        assert tissue_code(code) == code and tissue_name(code) == tissue_name(tissue) == tissue
    assert names.TISSUE_NAMES["TL"] == "lateral tibial cartilage"
    # net names and pair names split on "|", "(" and "-": codes are capitals only
    assert all(code.isalpha() and code.isupper() for code in CODES.values())


@pytest.mark.parametrize("bad", ["patella", "f", "", "F(s)"])
def test_unknown_tissue_is_named(bad):
    with pytest.raises(ValueError, match=repr(bad).replace("(", r"\(").replace(")", r"\)")):
        tissue_code(bad)


def test_net_names_round_trip():
    assert net_name("tibial_cartilage") == "T(s)"
    assert net_name("tibial_cartilage", base="femoral_cartilage") == "T|F(s)"
    assert net_name("lateral_tibial_cartilage", "TM") == "TL|TM(s)"
    for tissue in ALL_TISSUES:
        assert parse_net_name(net_name(tissue)) == (CODES[tissue], None)
        for base in ALL_TISSUES:
            if base != tissue:
                name = net_name(tissue, base)
                assert parse_net_name(name) == (CODES[tissue], CODES[base])
                assert tissue_of(name) == CODES[tissue] and base_of(name) == CODES[base]
    assert tissue_of("TL|TM(s)") == "TL" and base_of("TL|TM(s)") == "TM"
    assert tissue_of("MM(s)") == "MM" and base_of("MM(s)") is None


@pytest.mark.parametrize("bad", ["T|F", "X(s)", "T|T(s)", "TLX|F(s)", "t|f(s)", "T||F(s)", "T|F(s) "])
def test_bad_net_names_are_named(bad):
    with pytest.raises(ValueError, match="is not a net name"):
        parse_net_name(bad)
    with pytest.raises(ValueError):
        tissue_of(bad)


def test_net_name_errors():
    with pytest.raises(ValueError, match="own tissue"):
        net_name("F", "femoral_cartilage")
    with pytest.raises(ValueError, match="'kneecap'"):
        net_name("kneecap")


def test_scratch_and_finetuned_nets():
    assert scratch_nets(PAPER_TISSUES) == ("F(s)", "T(s)", "M(s)")
    assert finetuned_nets(PAPER_TISSUES) == ("T|F(s)", "M|F(s)", "F|T(s)", "M|T(s)", "F|M(s)", "T|M(s)")
    four = ("F", "TL", "TM", "P")
    assert len(finetuned_nets(four)) == 4 * 3 and len(set(finetuned_nets(four))) == 12


def test_tissue_pairs():
    assert [pair_name(*p) for p in tissue_pairs(PAPER_TISSUES)] == ["F-T", "F-M", "M-T"]  # the paper's order
    assert tissue_pairs(["femoral_cartilage", "patellar_cartilage"]) == [("F", "P")]
    assert tissue_pairs(["TM", "TL", "F"]) == [("TL", "TM"), ("F", "TM"), ("F", "TL")]
    assert pair_name("T", "M") == pair_name("meniscus", "T") == "M-T"


def test_check_tissues():
    assert check_tissues(["F", "patellar_cartilage"]) == ("femoral_cartilage", "patellar_cartilage")
    with pytest.raises(ValueError, match="at least two"):
        check_tissues(["femoral_cartilage"])
    with pytest.raises(ValueError, match="at least two"):
        check_tissues("femoral_cartilage")
    with pytest.raises(ValueError, match="'tibia'"):
        check_tissues(["femoral_cartilage", "tibia"])
    with pytest.raises(ValueError, match="more than once"):
        check_tissues(["femoral_cartilage", "meniscus", "F"])


def test_iwoai_label_map():
    assert tissue_labels("T") == (1, 2) and tissue_labels("patellar_cartilage") == (3,)
    assert tissue_labels("TM") == (2,) and tissue_labels("TL") == (1,)
    assert tissue_labels("MM") == (5,) and tissue_labels("ML") == (4,) and tissue_labels("M") == (4, 5)
    for labels in names.TISSUE_LABELS.values():  # every format's map in the vocabulary's order
        assert list(labels) == [t for t in ALL_TISSUES if t in labels]
    assert list(names.TISSUE_LABELS[names.IWOAI]) == list(ALL_TISSUES)
    with pytest.raises(ValueError, match="'nnunet_knee'"):
        tissue_labels("F", "nnunet_knee")


def test_a_format_without_a_tissue(monkeypatch):
    # A later reader (e.g. a data set without menisci) adds its own map; asking it for a tissue it lacks names both.
    monkeypatch.setitem(names.TISSUE_LABELS, "no_menisci", {"femoral_cartilage": (1,), "tibial_cartilage": (2, 3)})
    assert tissue_labels("T", "no_menisci") == (2, 3)
    with pytest.raises(ValueError, match="'no_menisci' does not label 'meniscus'"):
        tissue_labels("M", "no_menisci")
