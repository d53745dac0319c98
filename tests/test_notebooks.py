"""The notebook suite: committed notebooks are clean and parameterized; the whole suite runs
headlessly through the runner at the tiny profile and writes every figure, table and report."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from machine import chromium_or_skip

from kneelib.core import paths, registry
from kneelib.report import runner
from kneelib.report.export import chromium_path

NOTEBOOKS = sorted(paths.NOTEBOOKS_DIR.glob("*.ipynb"))
# The figures of the default suite (01-07), as the registry names them.
FIGURES = [f.stem for f in registry.FIGURES.values() if not set(f.notebooks) <= set(runner.OPT_IN)]


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


# ----------------------------------------------------------------------------- the shared tiny run
# Each test below checks one thing of the one headless run at the tiny profile (the session fixture
# ``tiny_run`` in conftest.py: ``runner.reproduce("tiny")`` into a temporary outputs root), so a
# failure names what is wrong and hides none of the other checks.

DEFAULT_NOTEBOOKS = [n for n in runner.NOTEBOOKS if n not in runner.OPT_IN]
# rows of results/claims.csv and of the claims report
CLAIM_IDS = ["C1", "C1b", "C2", "C3", "C4", "C5", "C6", "C7", "C8", "C8s", "C8m", "C8f", "C8b", "C9", "C10"]
CLAIMS_REPORTED = CLAIM_IDS


@pytest.fixture
def tiny_out(tiny_run, monkeypatch) -> Path:
    """``outputs/tiny`` of the shared run, with ``$KNEELIB_OUTPUTS`` pointing at its root."""
    root, _ = tiny_run
    monkeypatch.setenv(paths.OUTPUTS_ENV, str(root))
    return root / "tiny"


def _results(out: Path, name: str) -> pd.DataFrame:
    """The result table ``name`` (a kneelib.core.registry name) of the run under ``out``."""
    return pd.read_csv(out / registry.TABLES[name].path)


@pytest.mark.slow
def test_tiny_run_executes_every_default_notebook(tiny_run):
    _, executed = tiny_run
    assert [p.stem for p in executed] == [n for n in runner.available_notebooks() if n not in runner.OPT_IN]


@pytest.mark.slow
@pytest.mark.parametrize("name", DEFAULT_NOTEBOOKS)
def test_executed_notebook_has_outputs(tiny_out, name):
    nb = nbformat.read(tiny_out / "notebooks" / f"{name}.ipynb", as_version=4)
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code")


@pytest.mark.slow
@pytest.mark.parametrize("name", FIGURES)
def test_figure_html_is_small_and_loads_the_shared_plotlyjs(tiny_out, name):
    html = (tiny_out / "figures" / f"{name}.html").read_text()
    assert "Plotly.newPlot" in html and 'src="plotly.min.js"' in html and len(html) < 1_000_000


@pytest.mark.slow
@pytest.mark.parametrize("name", FIGURES)
def test_figure_png_is_written(tiny_out, name):
    chromium_or_skip()  # kaleido draws the PNGs in the system Chromium; without one only the HTML is written
    assert (tiny_out / "figures" / f"{name}.png").stat().st_size > 1_000


@pytest.mark.slow
def test_plotlyjs_is_written_once_for_the_figures_folder(tiny_out):
    assert (tiny_out / "figures" / "plotly.min.js").stat().st_size > 1_000_000


@pytest.mark.slow
def test_html_report_is_written(tiny_out):
    assert (tiny_out / "notebooks" / "report.html").stat().st_size > 100_000


@pytest.mark.slow
def test_claims_report_has_a_row_per_claim(tiny_out):
    claims_md = (tiny_out / "claims.md").read_text()
    assert [c for c in CLAIMS_REPORTED if f"| {c} |" not in claims_md] == []


@pytest.mark.slow
def test_claims_report_has_every_claim_computed(tiny_out):
    assert "not computed yet" not in (tiny_out / "claims.md").read_text()


@pytest.mark.slow
def test_claims_report_has_the_controls(tiny_out):
    assert "## Controls" in (tiny_out / "claims.md").read_text()


@pytest.mark.slow
def test_results_record_their_provenance(tiny_out):
    meta = json.loads((tiny_out / registry.TABLES["per_scan"].path).with_suffix(".meta.json").read_text())
    assert meta["config"]["name"] == "tiny" and len(meta["data_manifest_sha256"]) == 64
    assert {"torch", "numpy", "h5py"} <= set(meta["versions"]) and meta["git_commit"] and meta["seed"] == [0]


@pytest.mark.slow
def test_every_results_table_has_a_provenance_record(tiny_out):
    tables = sorted((tiny_out / "results").glob("*.csv"))
    assert tables and [t.name for t in tables if not t.with_suffix(".meta.json").exists()] == []


@pytest.mark.slow
@pytest.mark.parametrize("name", ["distances_seed_spread", "controls_seed_spread"])
def test_seed_spread_table_summarizes_the_one_seed(tiny_out, name):
    spread = _results(tiny_out, name)
    assert {"table", "pair", "group", "quantity", "n_seeds", "mean", "ci95_low"} <= set(spread.columns)
    assert (spread.n_seeds == 1).all() and spread["mean"].notna().all()


@pytest.mark.slow
def test_test_metrics_have_one_row_per_net_and_test_scan(tiny_out):
    assert len(_results(tiny_out, "per_scan")) == 9 * 2


@pytest.mark.slow
def test_test_dice_is_within_0_and_1(tiny_out):
    dice = _results(tiny_out, "per_scan").dice
    assert dice.between(0, 1).all(), dice.describe()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["scratch_pairs", "finetune"])
def test_distances_are_positive(tiny_out, name):
    distances = _results(tiny_out, name).distance
    assert (distances > 0).all() and distances.notna().all()


@pytest.mark.slow
def test_tissue_distances_cover_the_three_pairs(tiny_out):
    assert sorted(_results(tiny_out, "tissue").pair) == ["F-M", "F-T", "M-T"]


@pytest.mark.slow
def test_tissue_distances_are_positive(tiny_out):
    assert (_results(tiny_out, "tissue")[["d_ab", "d_ba"]] > 0).all().all()


@pytest.mark.slow
def test_claims_table_has_one_row_per_claim(tiny_out):
    assert list(_results(tiny_out, "claims").id) == CLAIM_IDS


@pytest.mark.slow
def test_claims_table_verdicts_agree_with_their_intervals(tiny_out):
    table = _results(tiny_out, "claims").fillna({"verdict": "n/a", "null_verdict": "n/a"})  # CSV: "n/a" -> NaN
    assert {"id", "verdict", "effect", "ci_low", "ci_high", "n_seeds", "null_verdict"} <= set(table.columns)
    assert table.verdict.isin(["supported", "contradicted", "inconclusive", "n/a"]).all(), table.verdict
    for r in table.itertuples():
        if np.isnan(r.effect):
            assert r.verdict == "n/a", r.id
        elif np.isnan(r.ci_low):
            assert r.verdict == "inconclusive", r.id
        else:
            assert r.verdict == ("supported" if r.ci_low > 0 else "contradicted" if r.ci_high < 0 else
                                 "inconclusive"), r.id
    # the distance and activation claims have a null world; the Dice claims do not
    nulls = table.set_index("id").null_verdict
    assert nulls[["C6", "C8", "C9"]].eq("no null world").all()
    assert nulls[["C1", "C2", "C3", "C7"]].isin(["supported", "contradicted", "inconclusive", "n/a"]).all(), nulls
    for claim_id in ("C8", "C8s", "C8f", "C9", "C10", "C1b"):
        assert table.set_index("id").loc[claim_id, "this_run"] != "not computed yet", claim_id


@pytest.mark.slow
def test_kernel_distance_of_trained_nets_is_symmetric(tiny_out):
    import torch

    from kneelib.compare.distances import kernel_distances

    f_net, t_net = (torch.load(tiny_out / "models" / "seed0" / f / "best.pt", weights_only=True)["best_state"]
                    for f in ("femoral_cartilage__scratch", "tibial_cartilage__scratch"))
    assert kernel_distances(f_net, t_net) == kernel_distances(t_net, f_net)


@pytest.mark.slow
def test_nine_nets_are_trained(tiny_out):
    nine = sorted(p.parent.name for p in (tiny_out / "models" / "seed0").glob("*/best.pt"))
    assert len(nine) == 9 and "meniscus__from_femoral_cartilage" in nine


@pytest.mark.slow
def test_policy_sweep_trains_its_fourteen_runs(tiny_out):
    # per pair (T|F and F|T): 34% data (3 strategies, at the profile's epochs and at matched steps), + depth lr
    # at 100%
    assert len(list((tiny_out / "models" / "policy").rglob("best.pt"))) == 2 * 7


@pytest.mark.slow
def test_policy_runs_at_matched_steps_take_at_least_as_many_steps(tiny_out):
    policy = _results(tiny_out, "policy")
    limited = policy[policy.fraction < 1].set_index(["steps", "strategy"]).optimizer_steps
    # 1 of 3 subjects: k = 3 times the epochs at matched steps; each epoch 1/3 of the full data's steps
    assert (limited.loc["matched"] >= limited.loc["epochs"]).all()


@pytest.mark.slow
def test_rerun_reuses_the_trained_nets(tiny_out):
    from kneelib.core.profiles import get_profile
    from kneelib.data import context
    from kneelib.nets import run

    profile = get_profile("tiny")
    ctx = context.prepare_data(profile)
    result = run.train_net(profile, ctx, run.NetSpec("meniscus", "femoral_cartilage"), progress=False)
    assert result.reused


@pytest.mark.slow
def test_suite_writes_every_registered_output(tiny_run):
    """Every table and figure kneelib.core.registry assigns to 01-07 is on disk after the tiny run (the
    PNGs only where Chromium can draw them)."""
    root, _ = tiny_run
    out = root / "tiny"
    expected = {o for n in DEFAULT_NOTEBOOKS for o in registry.written_by(n)}
    png = [".png"] if chromium_path() else []
    files = [f for o in expected for f in ([f"{o.path}{s}" for s in [".html", *png]] if o.folder == "figures"
                                           else [o.path])]
    assert len(expected) > 30 and [f for f in files if not (out / f).exists()] == []


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
    table = _results(out, "robustness_claims").fillna({"verdict": "n/a"})  # CSV reads "n/a" back as NaN
    ids = CLAIM_IDS
    assert list(table.setting.unique()) == ["recipe", "ft_lr"] and len(table) == len(ids) * 2
    assert not table.duplicated(["setting", "id"]).any() and set(table.id) == set(ids)
    answered = table[table.verdict != "n/a"]
    assert (answered.n_seeds == 2).all()
    assert (answered.ci_low <= answered.effect).all() and (answered.effect <= answered.ci_high).all()
    assert table.verdict.isin(["supported", "contradicted", "inconclusive", "n/a"]).all()
    shares = table.groupby("setting").reference_scratch.all()
    assert shares["ft_lr"] and not shares["recipe"]  # ft_lr reuses the recipe's scratch nets
    nets = _results(out, "robustness_nets")
    shared = nets[(nets.setting == "ft_lr") & (nets.kind == "scratch")]
    assert len(nets) == 2 * 2 * 9 and shared.reused.all()  # ft_lr reuses the recipe's scratch nets
    assert nets[(nets.setting == "ft_lr") & (nets.kind == "fine-tuned")].run_dir.str.contains("settings/ft_lr").all()
    ratio = _results(out, "robustness_ratio_summary").set_index("setting")
    assert ratio.ratio_mean.between(0, 1).all() and ratio.paper_ratio.iloc[0] == pytest.approx(0.1267, abs=1e-4)
    assert "Plotly.newPlot" in (out / f"{registry.FIGURES['robustness_claims_heatmap'].path}.html").read_text()
    md = (out / "claims.md").read_text()
    assert "across recipes |" in md and md.count("\n| C") >= len(ids)


@pytest.mark.slow
def test_a_study_of_two_other_tissues_runs_and_leaves_the_paper_claims_unanswered(tmp_path, monkeypatch):
    """``--set 'tissues=["femoral_cartilage","patellar_cartilage"]'``: 01-07 run with 2 scratch and 2 fine-tuned
    nets per seed; the claims about F, T and M say n/a, those about any scratch and fine-tuned nets are answered."""
    monkeypatch.setenv(paths.OUTPUTS_ENV, str(tmp_path))
    tissues = ["femoral_cartilage", "patellar_cartilage"]
    executed = runner.reproduce("tiny", overrides={"tissues": tissues}, report=False)
    assert [p.stem for p in executed] == DEFAULT_NOTEBOOKS
    out = tmp_path / "tiny"
    assert sorted(_results(out, "per_scan").net.unique()) == ["F(s)", "F|P(s)", "P(s)", "P|F(s)"]
    assert list(_results(out, "tissue").pair) == ["F-P"]
    claims = _results(out, "claims").fillna({"verdict": "n/a"}).set_index("id")  # CSV reads "n/a" back as NaN
    paper_only = ["C4", "C5", "C6", "C7"]
    assert claims.loc[paper_only, "this_run"].str.startswith("n/a: needs the paper's tissues F, T and M").all()
    assert claims.loc[paper_only, "effect"].isna().all() and (claims.loc[paper_only, "verdict"] == "n/a").all()
    assert claims.loc[["C1", "C2", "C3"], "effect"].notna().all()
    md = (out / "claims.md").read_text()
    assert all("| n/a | **n/a** |" in next(line for line in md.splitlines() if line.startswith(f"| {c} |"))
               for c in paper_only)
