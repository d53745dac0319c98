"""kneelib.core.registry: one name per result table and figure, used by the notebooks (no stem typed in a
save call), and consistent with what the README says each notebook writes."""

from __future__ import annotations

import fnmatch
import re

import pytest

from kneelib.core import paths, registry
from kneelib.report import runner

README = paths.REPO_ROOT / "README.md"
# Files the README names that are inputs, not outputs of a run (a data root's own manifest).
NOT_OUTPUTS = {"manifest.csv", "dataset.json", "scans.csv"}  # input files of the data, and an example name
OUTPUTS = [*registry.TABLES.values(), *registry.FIGURES.values()]


def _twin(notebook: str) -> str:
    return (paths.NOTEBOOKS_DIR / f"{notebook}.py").read_text()


def test_lookup_gives_the_stem_and_names_unknown_names():
    assert registry.table("per_scan") == "test_metrics" and registry.table("headline") == "distances_headline"
    assert registry.figure("fig2_performance") == "fig2_performance"
    assert registry.TABLES["headline"].path == "results/distances_headline.json"
    assert registry.FIGURES["fig2_performance"].path == "figures/fig2_performance"
    with pytest.raises(KeyError, match="no table named 'test_metric'.*per_scan"):
        registry.table("test_metric")
    with pytest.raises(KeyError, match="no figure named 'per_scan'"):
        registry.figure("per_scan")  # a table's name is not a figure's


def test_every_output_has_one_file_and_known_writers():
    for folder in ("results", "figures"):
        stems = [o.stem for o in OUTPUTS if o.folder == folder]
        assert len(stems) == len(set(stems)), f"two {folder} entries share a stem"
    assert all(o.notebooks and set(o.notebooks) <= set(runner.NOTEBOOKS) for o in OUTPUTS)
    assert set(registry.CLAIM_INPUTS) <= set(registry.TABLES)
    assert {n for o in OUTPUTS for n in o.notebooks} == set(runner.NOTEBOOKS)  # every notebook writes some


@pytest.mark.parametrize("notebook", runner.NOTEBOOKS)
def test_notebooks_save_only_under_registered_names(notebook: str):
    """No save call in a notebook types a file stem; and each output the registry assigns to a notebook
    is saved there under its registered name (the claims table by the claims report)."""
    source = _twin(notebook)
    typed = re.findall(r"save_(?:table|json|figure)\([^\n]*?,\s*\"(\w+)\"", source)
    assert not typed, f"{notebook} types file stems {typed}: use kneelib.core.registry"
    for name, out in {**registry.TABLES, **registry.FIGURES}.items():
        if notebook not in out.notebooks:
            continue
        if name == "claims":
            assert "claims_report.write_claims(" in source, notebook
        else:
            assert f'"{name}"' in source, f"{notebook} never names {name!r}, which the registry says it writes"


def _readme_names() -> list[str]:
    return re.findall(r"`([^`\s]+)`", README.read_text())


def _matches(token: str) -> list[registry.Output]:
    """The registered outputs a README path (``results/x.csv``, ``figures/fig*``, ``figures/*.html``) names."""
    pattern = re.sub(r"\.(html|png)$", "", token) if token.startswith("figures/") else token
    return [o for o in OUTPUTS if fnmatch.fnmatchcase(o.path, pattern)]


def test_every_output_the_readme_names_is_registered():
    named = [t for t in _readme_names() if t.startswith(("results/", "figures/"))]
    assert len(named) > 20  # the README's table of outputs was found
    assert [t for t in named if not _matches(t)] == []
    bare = [t for t in _readme_names() if re.fullmatch(r"\w+\.(csv|json)", t) and t not in NOT_OUTPUTS]
    stems = {f"{o.stem}{o.suffix}" for o in registry.TABLES.values()}
    assert [t for t in bare if t not in stems] == []


def _notebooks_of(cell: str) -> set[str]:
    """'02_scratch, 03_finetune' or '04-07' -> the notebooks' numbers."""
    numbers = set(re.findall(r"\b(\d\d)_", cell))
    for a, b in re.findall(r"\b(\d\d)-(\d\d)\b", cell):
        numbers |= {f"{n:02d}" for n in range(int(a), int(b) + 1)}
    return numbers


def test_readme_says_which_notebook_writes_each_output():
    section = README.read_text().split("## What makes each figure and table", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| ") and "`" in line]
    assert len(rows) > 10
    for files, notebooks, *_ in rows:
        written_in = _notebooks_of(notebooks)
        for token in re.findall(r"`((?:results|figures)/[^`]+)`", files):
            for out in _matches(token):
                assert {n[:2] for n in out.notebooks} & written_in, (token, out.notebooks, notebooks)


def test_readme_names_every_figure_and_every_claim_input():
    named = [t for t in _readme_names() if t.startswith(("results/", "figures/"))]
    generic = re.compile(r"\w+/\*\.\w+")  # "figures/*.html", "results/*.csv" name no output in particular
    covered = {o for t in named if not generic.fullmatch(t) for o in _matches(t)}
    missing = [o.path for o in [*registry.FIGURES.values(), *(registry.TABLES[n] for n in registry.CLAIM_INPUTS)]
               if o not in covered]
    assert missing == []
