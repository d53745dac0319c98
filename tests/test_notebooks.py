"""The notebook suite: committed notebooks are clean and parameterized; the whole suite runs
headlessly through the runner at the tiny profile and writes every figure, table and report."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from kneelib.core import paths, registry
from kneelib.report import runner

NOTEBOOKS = sorted(paths.NOTEBOOKS_DIR.glob("*.ipynb"))
# The figures of the default suite (01-07), as the registry names them.
FIGURES = [f.stem for f in registry.FIGURES.values() if not set(f.notebooks) <= set(runner.OPT_IN)]


def _table(out: Path, name: str) -> pd.DataFrame:
    """The result table ``name`` (a kneelib.core.registry name) of the run under ``out``."""
    return pd.read_csv(out / registry.TABLES[name].path)


def test_every_suite_notebook_is_committed():
    assert [p.stem for p in NOTEBOOKS] == list(runner.NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_clean_and_parameterized(path: Path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), f"{path.name} carries outputs"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "profile =" in tagged[0].source
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert not any(line.lstrip().startswith("def ") for c in code for line in c.source.splitlines()), \
        f"{path.name} defines functions; they belong in kneelib"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_and_its_py_twin_are_in_sync(path: Path):
    """The py:percent twin is what people edit and review; `make sync-notebooks` updates the .ipynb."""
    import jupytext

    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent", f"{path.name} is not paired"
    twin = path.with_suffix(".py")
    assert twin.exists(), f"{twin.name} missing: run make sync-notebooks"
    text = jupytext.read(twin)

    def cells(notebook):
        return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", []))) for c in notebook.cells]

    assert cells(text) == cells(nb), f"{path.name} and {twin.name} differ: run make sync-notebooks"


def test_out_of_sync_pair_is_detected(tmp_path):
    """The check above is not vacuous: a changed line in the twin makes the cells differ."""
    import jupytext

    source = NOTEBOOKS[0].with_suffix(".py").read_text()
    edited = tmp_path / "edited.py"
    edited.write_text(source.replace("notebook_setup(profile, data_root, overrides)",
                                     "notebook_setup(profile, data_root, {})"))
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    assert [c.source for c in jupytext.read(edited).cells] != [c.source for c in nb.cells]


def test_parse_overrides():
    assert runner.parse_overrides(["max_epochs=5", "seeds=[0,1]", "precision=fp32"]) == \
        {"max_epochs": 5, "seeds": [0, 1], "precision": "fp32"}
    with pytest.raises(ValueError, match="key=value"):
        runner.parse_overrides(["max_epochs"])


def test_bad_parameter_fails_before_any_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.OUTPUTS_ENV, str(tmp_path))
    with pytest.raises(ValueError, match="max_epoch"):
        runner.reproduce("tiny", {"max_epoch": 3})
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        runner.reproduce("huge")
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_failing_notebook_names_notebook_cell_and_partial_output(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.OUTPUTS_ENV, str(tmp_path))
    missing = tmp_path / "no_such_oai_root"
    with pytest.raises(runner.NotebookFailed) as err:
        runner.reproduce("tiny", data_root=str(missing), only=["01"], report=False)
    message = str(err.value)
    assert "01_data" in message and "cell" in message and str(missing) in message
    partial = tmp_path / "tiny" / "notebooks" / "01_data.ipynb"
    assert partial.exists() and str(partial) in message


@pytest.mark.slow
def test_whole_suite_runs_at_tiny_profile(tiny_run, monkeypatch):
    root, executed = tiny_run  # runner.reproduce("tiny") into a temp outputs root (conftest.py)
    monkeypatch.setenv(paths.OUTPUTS_ENV, str(root))
    out = root / "tiny"
    assert [p.stem for p in executed] == [n for n in runner.available_notebooks() if n not in runner.OPT_IN]
    for p in executed:
        nb = nbformat.read(p, as_version=4)
        assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
    for name in FIGURES:
        html = (out / "figures" / f"{name}.html").read_text()
        assert "Plotly.newPlot" in html and 'src="plotly.min.js"' in html and len(html) < 1_000_000, name
        assert (out / "figures" / f"{name}.png").stat().st_size > 1_000, name
    assert (out / "figures" / "plotly.min.js").stat().st_size > 1_000_000  # written once for the folder
    assert (out / "notebooks" / "report.html").stat().st_size > 100_000

    claims_md = (out / "claims.md").read_text()
    for claim in ("C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8"):
        assert f"| {claim} |" in claims_md
    assert "not computed yet" not in claims_md and "## Controls" in claims_md

    meta = json.loads((out / registry.TABLES["per_scan"].path).with_suffix(".meta.json").read_text())
    assert meta["config"]["name"] == "tiny" and len(meta["data_manifest_sha256"]) == 64
    assert {"torch", "numpy", "h5py"} <= set(meta["versions"]) and meta["git_commit"] and meta["seed"] == [0]
    for name in ("distances_seed_spread", "controls_seed_spread"):
        spread = _table(out, name)
        assert {"table", "pair", "group", "quantity", "n_seeds", "mean", "ci95_low"} <= set(spread.columns), name
        assert (spread.n_seeds == 1).all() and spread["mean"].notna().all(), name
    # Values, not only files: Dice in [0, 1]; distances positive and symmetric; one claims row per claim.
    per_scan = _table(out, "per_scan")
    assert len(per_scan) == 9 * 2 and per_scan.dice.between(0, 1).all(), per_scan.dice.describe()
    for name in ("scratch_pairs", "finetune"):
        distances = _table(out, name).distance
        assert (distances > 0).all() and distances.notna().all(), name
    tissue = _table(out, "tissue")
    assert sorted(tissue.pair) == ["F-M", "F-T", "M-T"] and (tissue[["d_ab", "d_ba"]] > 0).all().all()
    claims = _table(out, "claims")
    assert list(claims.id) == ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C8m", "C8b"]
    assert claims.holds.dropna().astype(str).isin(["True", "False"]).all(), claims.holds

    import torch

    from kneelib.compare.distances import kernel_distances

    f_net, t_net = (torch.load(out / "models" / "seed0" / f / "best.pt", weights_only=True)["best_state"]
                    for f in ("femoral_cartilage__scratch", "tibial_cartilage__scratch"))
    assert kernel_distances(f_net, t_net) == kernel_distances(t_net, f_net)

    nine = sorted(p.parent.name for p in (out / "models" / "seed0").glob("*/best.pt"))
    assert len(nine) == 9 and "meniscus__from_femoral_cartilage" in nine
    # T|F pair at 34% data (3 strategies, at the profile's epochs and at matched steps), + depth lr at 100%
    assert len(list((out / "models" / "policy").rglob("best.pt"))) == 7
    policy = _table(out, "policy")
    limited = policy[policy.fraction < 1].set_index(["steps", "strategy"]).optimizer_steps
    # 1 of 3 subjects: k = 3 times the epochs at matched steps; each epoch 1/3 of the full data's steps
    assert (limited.loc["matched"] >= limited.loc["epochs"]).all()

    # A rerun reuses the trained networks instead of training them again.
    from kneelib.core.profiles import get_profile
    from kneelib.data import context
    from kneelib.nets import run

    profile = get_profile("tiny")
    ctx = context.prepare_data(profile)
    result = run.train_net(profile, ctx, run.NetSpec("meniscus", "femoral_cartilage"), progress=False)
    assert result.reused


@pytest.mark.slow
def test_suite_writes_every_registered_output(tiny_run):
    """Every table and figure kneelib.core.registry assigns to 01-07 is on disk after the tiny run."""
    root, _ = tiny_run
    out = root / "tiny"
    suite = [n for n in runner.NOTEBOOKS if n not in runner.OPT_IN]
    expected = {o for n in suite for o in registry.written_by(n)}
    files = [f for o in expected for f in ([f"{o.path}.html", f"{o.path}.png"] if o.folder == "figures" else [o.path])]
    missing = [f for f in files if not (out / f).exists()]
    assert len(expected) > 30 and missing == []


@pytest.mark.slow
@pytest.mark.parametrize("number", [n[:2] for n in runner.NOTEBOOKS if n not in runner.OPT_IN])
def test_every_notebook_runs_alone_from_empty_outputs(tmp_path, monkeypatch, number):
    """A notebook computes what it needs through kneelib (e.g. 07 trains the nets it fine-tunes from
    and computes the tissue distances itself), so ``--only NN`` works on a fresh clone."""
    monkeypatch.setenv(paths.OUTPUTS_ENV, str(tmp_path))
    (executed,) = runner.reproduce("tiny", only=[number], report=False)
    assert executed.stem.startswith(number) and executed.exists()


@pytest.mark.slow
def test_robustness_notebook_at_tiny_profile(tmp_path, monkeypatch):
    """08 alone from empty outputs (``--only 08``): the tiny grid, one row per claim and setting, the
    heatmap, and the claims report with its robust-across-recipes column."""
    monkeypatch.setenv(paths.OUTPUTS_ENV, str(tmp_path))
    (executed,) = runner.reproduce("tiny", only=["08"], report=False)
    assert executed.stem == "08_robustness"
    out = tmp_path / "tiny"
    table = _table(out, "robustness_claims")
    ids = ["C1", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C8m", "C8b"]
    assert list(table.setting.unique()) == ["recipe", "ft_lr"] and len(table) == len(ids) * 2
    assert not table.duplicated(["setting", "id"]).any() and set(table.id) == set(ids)
    assert (table.n_seeds == 2).all()
    answered = table.dropna(subset=["margin_mean"])
    assert (answered.ci95_low <= answered.margin_mean).all() and (answered.margin_mean <= answered.ci95_high).all()
    assert (answered.holds == (answered.margin_mean > 0)).all()
    nets = _table(out, "robustness_nets")
    shared = nets[(nets.setting == "ft_lr") & (nets.kind == "scratch")]
    assert len(nets) == 2 * 2 * 9 and shared.reused.all()  # ft_lr reuses the recipe's scratch nets
    assert nets[(nets.setting == "ft_lr") & (nets.kind == "fine-tuned")].run_dir.str.contains("settings/ft_lr").all()
    ratio = _table(out, "robustness_ratio_summary").set_index("setting")
    assert ratio.ratio_mean.between(0, 1).all() and ratio.paper_ratio.iloc[0] == pytest.approx(0.1267, abs=1e-4)
    assert "Plotly.newPlot" in (out / f"{registry.FIGURES['robustness_claims_heatmap'].path}.html").read_text()
    md = (out / "claims.md").read_text()
    assert "robust across recipes |" in md and md.count("\n| C") >= len(ids)
