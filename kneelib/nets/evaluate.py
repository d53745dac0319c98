"""Evaluation of trained nets on whole test volumes: prediction slice by slice, per-scan metrics,
the Fig. 2 summary and learning-curve tables.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch

from kneelib.core.atomic import write_json
from kneelib.core.profiles import Profile
from kneelib.data.context import DataContext
from kneelib.data.slices import load_eval_volume
from kneelib.nets.metrics import scan_metrics
from kneelib.nets.run import NetSpec
from kneelib.nets.train import TrainResult, autocast, autocast_dtype, default_device, drop_best_weights
from kneelib.nets.unet import UNet2D, model_from_state


@torch.no_grad()
def predict_volume(model: UNet2D, slices: torch.Tensor, out_shape: tuple[int, int], batch_size: int = 32,
                   precision: str = "auto") -> np.ndarray:
    """Segment a scan slice by slice and stack the result back into 3D.

    Args:
        model: a trained UNet2D.
        slices: (D, 1, S, S) z-scored network inputs.
        out_shape: (H, W) of the original scan; probabilities are resampled bilinearly to it.

    Returns: bool (H, W, D), sigmoid probability >= 0.5.
    """
    device = next(model.parameters()).device
    dtype = autocast_dtype(precision, device)
    model.eval()
    probs = []
    for start in range(0, len(slices), batch_size):
        x = slices[start:start + batch_size].to(device).contiguous(memory_format=torch.channels_last)
        with autocast(device, dtype):
            logits = model(x)
        probs.append(torch.sigmoid(logits.float()).cpu())
    p = torch.cat(probs)  # (D, 1, S, S)
    if tuple(p.shape[-2:]) != tuple(out_shape):
        p = torch.nn.functional.interpolate(p, size=out_shape, mode="bilinear", align_corners=False)
    return (p[:, 0] >= 0.5).permute(1, 2, 0).numpy()  # (H, W, D)


def evaluate_nets(profile: Profile, ctx: DataContext, states: dict[NetSpec, dict[str, torch.Tensor]],
                  split: str = "test") -> pd.DataFrame:
    """Dice, VOE, CV and ASSD (mm) of every net on every scan of ``split``, at the scans' own
    resolution; one row per (net, scan), with the scan's ``subject`` (the claims resample test subjects)."""
    device = default_device()
    models = {spec: model_from_state(s).to(device) for spec, s in states.items()}
    rows = []
    for record in ctx.split(split):
        slices, masks = load_eval_volume(record, ctx.root, profile.slice_size, ctx.cache_dir)
        shape = next(iter(masks.values())).shape[:2]
        for spec, model in models.items():
            pred = predict_volume(model, slices, shape, profile.eval_batch_size, profile.precision)
            rows.append({"net": spec.name, "tissue": spec.tissue, "base_tissue": spec.base_tissue or "",
                         "kind": "scratch" if spec.base is None else "fine-tuned", "seed": spec.seed,
                         "scan_id": record.scan_id, "subject": record.subject,
                         **scan_metrics(pred, masks[spec.tissue], record.spacing_mm)})
    return pd.DataFrame(rows)


def evaluate_run(profile: Profile, ctx: DataContext, spec: NetSpec, result: TrainResult, split: str = "test",
                 drop_weights: bool = False) -> pd.DataFrame:
    """:func:`evaluate_nets` for one finished run, cached in its folder as ``<split>_metrics.json``
    (tied to the run key, so a retrained run is evaluated again).

    ``drop_weights`` then removes the best weights from its ``best.pt`` (keeping key, history and
    provenance): for runs whose weights no analysis reads again, such as the policy sweep's
    (``Profile.policy_keep_weights``). A rerun reuses the run and its cached metrics.

    Raises FileNotFoundError when the weights were dropped and the cached metrics are missing or
    belong to another run key (``force=True`` retrains).
    """
    cache = result.run_dir / f"{split}_metrics.json"
    key = result.meta["key"]
    if cache.exists():
        stored = json.loads(cache.read_text())
        if stored.get("key") == key:
            per_scan = pd.DataFrame(stored["rows"], columns=stored["columns"])
            if "subject" not in per_scan:  # cached before subjects were recorded
                subject_of = {r.scan_id: r.subject for r in ctx.split(split)}
                per_scan.insert(per_scan.columns.get_loc("scan_id") + 1, "subject", per_scan.scan_id.map(subject_of))
            return per_scan
    if result.state is None:
        raise FileNotFoundError(f"{result.run_dir}: its weights were dropped after evaluation and {cache.name} "
                                "is missing or from another run; retrain it with force=True")
    per_scan = evaluate_nets(profile, ctx, {spec: result.state}, split)
    write_json(cache, {"key": key, "columns": list(per_scan.columns), "rows": per_scan.values.tolist()})
    if drop_weights:
        drop_best_weights(result.run_dir)
    return per_scan


def summarize_metrics(per_scan: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd per net and metric (the Fig. 2 table)."""
    metrics = [c for c in ("dice", "voe", "cv", "assd_mm") if c in per_scan]
    grouped = per_scan.groupby(["net", "tissue", "kind", "seed"], sort=False)[metrics]
    table = grouped.agg(["mean", "std"])
    table.columns = [f"{m}_{s}" for m, s in table.columns]
    return table.reset_index()


def training_summary(results: dict[NetSpec, TrainResult]) -> pd.DataFrame:
    """One row per trained (or reused) net: best epoch, epochs run, best validation loss, reused."""
    return pd.DataFrame([{"net": spec.name, "seed": spec.seed, "best_epoch": r.best_epoch, "epochs": len(r.history),
                          "best_val_loss": r.best_val_loss, "reused": r.reused} for spec, r in results.items()])


def history_frame(results: dict[NetSpec, TrainResult]) -> pd.DataFrame:
    """Learning curves of several nets in one long table."""
    return pd.DataFrame([{"net": spec.name, "seed": spec.seed, "kind": "scratch" if spec.base is None else
                          "fine-tuned", "best_epoch": r.best_epoch, **row}
                         for spec, r in results.items() for row in r.history])


