"""kneelib.nets.evaluate with nets whose predictions are known: a thresholding stub for predict_volume, and
UNet2D states that predict everything or nothing for evaluate_nets on the tiny phantoms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kneelib.data import iwoai
from kneelib.nets.evaluate import evaluate_nets, predict_volume
from kneelib.nets.metrics import volume_ml
from kneelib.nets.run import NetSpec
from kneelib.nets.unet import UNet2D

pytestmark = pytest.mark.usefixtures("one_thread")

F, T, M = "femoral_cartilage", "tibial_cartilage", "meniscus"


class Threshold(torch.nn.Module):
    """logits = 10 (x - 0.5): the prediction is the input thresholded at 0.5."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = torch.nn.Parameter(torch.tensor(10.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gain * (x - 0.5)


def test_predict_volume_stacks_slices_on_the_last_axis():
    slices = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))  # D=5, no symmetry
    pred = predict_volume(Threshold(), slices, (8, 8), batch_size=2, precision="fp32")  # 3 batches, the last short
    assert pred.dtype == np.bool_ and pred.shape == (8, 8, 5)
    expected = (slices[:, 0] >= 0.5).numpy()  # (D, H, W)
    for d in range(5):
        assert np.array_equal(pred[:, :, d], expected[d]), d


# 0/1 patterns of length 8, none constant or symmetric, so a flipped axis shows
PATTERNS = np.array([[1, 1, 0, 0, 0, 1, 0, 0], [0, 1, 1, 1, 0, 0, 0, 0], [1, 0, 0, 1, 1, 1, 1, 0],
                     [0, 0, 0, 0, 1, 0, 1, 1], [1, 1, 1, 0, 1, 0, 0, 0], [0, 0, 1, 0, 0, 1, 1, 1]])


def test_predict_volume_resamples_to_the_scan_shape():
    # Slices vary along one axis only (rows in even slices, columns in odd ones), so the bilinear resampling
    # is 1-D, and on a 0/1 input it crosses 0.5 half way between source pixels: the prediction at output
    # pixel j is the source pixel at (j + 0.5) * S / W (no output pixel falls on a tie for S=8, H=24, W=40).
    S, H, W, D = 8, 24, 40, 4
    rows, cols = PATTERNS[:D], PATTERNS[-D:]
    slices = torch.zeros(D, 1, S, S)
    for d in range(D):
        slices[d, 0] = torch.from_numpy(rows[d][:, None] if d % 2 == 0 else cols[d][None, :]).float()
    pred = predict_volume(Threshold(), slices, (H, W), batch_size=3, precision="fp32")
    assert pred.shape == (H, W, D)
    src_row, src_col = (((np.arange(n) + 0.5) * S / n).astype(int) for n in (H, W))
    for d in range(D):
        expected = (np.broadcast_to(rows[d][src_row][:, None], (H, W)) if d % 2 == 0
                    else np.broadcast_to(cols[d][src_col][None, :], (H, W)))
        assert np.array_equal(pred[:, :, d], expected.astype(bool)), d
    assert pred.any() and not pred.all()


def test_predict_volume_resamples_probabilities_bilinearly():
    # Two source columns, 0.3 and 0.9 (probabilities p0 = sigmoid(-2), p1 = sigmoid(4)), resampled to 100:
    # the probability crosses 0.5 at t = (0.5 - p0) / (p1 - p0) of the way from column 0 to column 1,
    # not half way (nearest neighbour) nor where the interpolated logit crosses 0 (t = 1/3).
    slices = torch.tensor([0.3, 0.9]).expand(1, 1, 2, 2)
    pred = predict_volume(Threshold(), slices, (3, 100), precision="fp32")
    p0, p1 = (1 / (1 + np.exp(-10 * (x - 0.5))) for x in (0.3, 0.9))
    t = (0.5 - p0) / (p1 - p0)
    first = int(np.ceil(50 * (0.5 + t) - 0.5))  # output column j sits at source column (j + 0.5) / 50 - 0.5
    assert first == 47
    assert pred[:, :, 0].tolist() == [[False] * first + [True] * (100 - first)] * 3


def constant_net(logit: float) -> dict[str, torch.Tensor]:
    """A UNet2D state whose head ignores its input: every pixel gets ``logit``."""
    state = UNet2D(depth=3, base_filters=4, seed=0).state_dict()
    state["head.weight"].zero_()
    state["head.bias"].fill_(logit)
    return state


def test_evaluate_nets_one_row_per_net_and_scan_with_known_values(tiny):
    profile, ctx = tiny
    states = {NetSpec(F): constant_net(10.0), NetSpec(M, T, seed=0): constant_net(-10.0),
              NetSpec(T, seed=3): constant_net(10.0)}
    table = evaluate_nets(profile, ctx, states)
    scans = [r.scan_id for r in ctx.split("test")]
    assert len(scans) == 2  # one test subject, two timepoints
    assert list(table.columns) == ["net", "tissue", "base_tissue", "kind", "seed", "scan_id", "subject",
                                   "dice", "voe", "cv", "assd_mm", "pred_ml", "truth_ml"]
    assert list(table.subject) == [r.subject for r in ctx.split("test") for _ in range(3)]
    assert list(zip(table.net, table.scan_id)) == [(n, s) for s in scans for n in ("F(s)", "M|T(s)", "T(s)")]
    rows = table.set_index(["net", "scan_id"])
    assert rows.loc["M|T(s)", "kind"].unique().tolist() == ["fine-tuned"]
    assert rows.loc["M|T(s)", "base_tissue"].unique().tolist() == [T]
    assert rows.loc["F(s)", "base_tissue"].unique().tolist() == [""]
    assert rows.loc["T(s)", "seed"].unique().tolist() == [3]
    for record in ctx.split("test"):
        masks = iwoai.read_tissue_masks(ctx.root / record.seg)
        for net, tissue in (("F(s)", F), ("T(s)", T)):
            truth, row = masks[tissue], rows.loc[(net, record.scan_id)]
            assert 0 < truth.sum() < truth.size
            # everything predicted: Dice 2|M| / (|M| + N), VOE 1 - |M| / N
            assert row.dice == pytest.approx(2 * truth.sum() / (truth.sum() + truth.size))
            assert row.voe == pytest.approx(1 - truth.sum() / truth.size)
            assert row.pred_ml == pytest.approx(volume_ml(np.ones_like(truth), record.spacing_mm))
            assert row.truth_ml == pytest.approx(volume_ml(truth, record.spacing_mm))
        nothing = rows.loc[("M|T(s)", record.scan_id)]  # nothing predicted
        assert nothing.dice == 0 and nothing.voe == 1 and nothing.pred_ml == 0 and np.isnan(nothing.assd_mm)
        assert nothing.truth_ml == pytest.approx(volume_ml(masks[M], record.spacing_mm))
    valid = evaluate_nets(profile, ctx, {NetSpec(F): constant_net(10.0)}, split="valid")
    assert valid.scan_id.tolist() == [r.scan_id for r in ctx.split("valid")]


def test_evaluate_run_caches_its_metrics_and_can_drop_the_weights(tiny, tmp_path):
    """A policy run's weights go once it is evaluated; a rerun reuses its key, history and cached metrics."""
    from kneelib.nets.evaluate import evaluate_run
    from kneelib.nets.train import TrainResult, drop_best_weights, load_checkpoint

    profile, ctx = tiny
    state = constant_net(10.0)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    from kneelib.core.atomic import save_torch

    save_torch(run_dir / "best.pt", {"key": "k1", "finished": True, "best_state": state, "history": [],
                                     "best_epoch": 1, "best_val_loss": 0.5, "meta": "{}"})
    result = TrainResult(state, [], 1, 0.5, run_dir, False, {"key": "k1"})
    first = evaluate_run(profile, ctx, NetSpec(F), result, drop_weights=True)
    assert first.equals(evaluate_nets(profile, ctx, {NetSpec(F): state}))
    best = load_checkpoint(run_dir / "best.pt")
    assert best["best_state"] is None and best["weights_dropped"] and best["key"] == "k1"
    # reused: no weights, the same table from the cache
    reused = TrainResult(None, [], 1, 0.5, run_dir, True, {"key": "k1"})
    again = evaluate_run(profile, ctx, NetSpec(F), reused)
    assert again.equals(first)
    # a different run key must not read the old metrics, and without weights it cannot evaluate
    with pytest.raises(FileNotFoundError, match="weights were dropped.*force=True"):
        evaluate_run(profile, ctx, NetSpec(F), TrainResult(None, [], 1, 0.5, run_dir, True, {"key": "k2"}))
    with pytest.raises(ValueError, match="not a finished run"):
        save_torch(tmp_path / "best.pt", {"finished": False})
        drop_best_weights(tmp_path)


def test_training_summary_one_row_per_net(tmp_path):
    from kneelib.nets.evaluate import training_summary
    from kneelib.nets.train import TrainResult

    history = [{"epoch": e, "val_loss": v} for e, v in ((1, 0.9), (2, 0.4), (3, 0.5))]
    results = {NetSpec(F): TrainResult({}, history, 2, 0.4, tmp_path, False, {}),
               NetSpec(T, F, seed=1): TrainResult({}, history[:1], 1, 0.9, tmp_path, True, {})}
    table = training_summary(results)
    assert list(table.net) == ["F(s)", "T|F(s)"] and list(table.seed) == [0, 1]
    assert list(table.best_epoch) == [2, 1] and list(table.epochs) == [3, 1]
    assert list(table.best_val_loss) == [0.4, 0.9] and list(table.reused) == [False, True]
