"""kneelib.core.fingerprint: the training path's source files found from its imports, and their hash."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kneelib.core import fingerprint
from kneelib.nets import train

ENTRY = train.TRAINING_ENTRY


@pytest.fixture()
def package_copy(tmp_path: Path) -> Path:
    """A copy of the kneelib package to edit."""
    return Path(shutil.copytree(fingerprint.PACKAGE_DIR, tmp_path / "kneelib",
                                ignore=shutil.ignore_patterns("__pycache__")))


def _names(files: list[Path], root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in files}


def test_closure_holds_the_training_path_and_nothing_of_the_analysis() -> None:
    names = _names(fingerprint.source_closure(ENTRY), fingerprint.PACKAGE_DIR)
    # files a hand-written list once missed, and the ones it had
    assert {"nets/run.py", "data/context.py", "data/manifest.py", "nets/train.py", "nets/unet.py", "nets/losses.py",
            "data/iwoai.py", "data/slices.py", "core/profiles.py", "names.py", "__init__.py", "nets/__init__.py",
            } <= names
    assert not [n for n in names if n.startswith(("report/", "study/", "compare/"))]


def test_imports_inside_functions_and_relative_imports_count(tmp_path: Path) -> None:
    pkg = tmp_path / "kneelib"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "entry.py").write_text("def f():\n    from . import helper\n    import kneelib.other as o\n")
    (pkg / "sub" / "helper.py").write_text("from ..deep import thing\n")
    (pkg / "deep.py").write_text("thing = 1\n")
    (pkg / "other.py").write_text("")
    (pkg / "unused.py").write_text("")
    closure = _names(fingerprint.source_closure("kneelib.sub.entry", pkg), pkg)
    assert closure == {"__init__.py", "sub/__init__.py", "sub/entry.py", "sub/helper.py", "deep.py", "other.py"}
    with pytest.raises(ValueError, match="not a module"):
        fingerprint.source_closure("kneelib.nowhere", pkg)


def test_editing_any_training_file_changes_the_key_and_a_report_module_does_not(package_copy: Path) -> None:
    before = fingerprint.source_fingerprint(ENTRY, package_copy)
    assert before == fingerprint.source_fingerprint(ENTRY)  # the copy hashes as the package does
    closure = fingerprint.source_closure(ENTRY, package_copy)
    for path in closure:
        original = path.read_bytes()
        path.write_bytes(original + b"\n_an_edit = 1\n")
        assert fingerprint.source_fingerprint(ENTRY, package_copy) != before, path
        path.write_bytes(original)
    assert fingerprint.source_fingerprint(ENTRY, package_copy) == before
    for rel in ("report/plots.py", "study/claims.py", "compare/distances.py"):
        (package_copy / rel).write_text("# rewritten\n")
    assert fingerprint.source_fingerprint(ENTRY, package_copy) == before


def test_a_new_module_imported_by_the_training_path_joins_the_key(package_copy: Path) -> None:
    before = fingerprint.source_fingerprint(ENTRY, package_copy)
    (package_copy / "data" / "new_reader.py").write_text("READER = 'skm-tea'\n")
    assert fingerprint.source_fingerprint(ENTRY, package_copy) == before  # not imported yet
    context = package_copy / "data" / "context.py"
    context.write_text(context.read_text() + "\nfrom kneelib.data import new_reader  # noqa\n")
    edited = fingerprint.source_fingerprint(ENTRY, package_copy)
    (package_copy / "data" / "new_reader.py").write_text("READER = 'nnunet'\n")
    assert len({before, edited, fingerprint.source_fingerprint(ENTRY, package_copy)}) == 3


def test_comments_and_docstrings_are_not_code_but_strings_and_numbers_are(package_copy: Path) -> None:
    before = fingerprint.source_fingerprint(ENTRY, package_copy)
    losses = package_copy / "nets" / "losses.py"
    text = losses.read_text()
    assert '"""' in text and "smooth: float = 1.0" in text
    losses.write_text("# a new comment\n" + text.replace('"""', '"""Reworded. ', 1) + "\n# and another\n")
    assert fingerprint.source_fingerprint(ENTRY, package_copy) == before  # a comment or docstring: no retraining
    losses.write_text(text.replace("smooth: float = 1.0", "smooth: float = 0.5"))
    assert fingerprint.source_fingerprint(ENTRY, package_copy) != before  # a number in the code
