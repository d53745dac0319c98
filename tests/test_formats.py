"""The three data formats behind one dispatch: detection, the `python -m kneelib data` check (voxel counts
equal to those read straight from the files, one-line errors naming the file), the study fitted to the
data's tissues and size, and 01-04 at the tiny profile on a SKM-TEA and an nnU-Net folder."""

from __future__ import annotations

import dataclasses
import json

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from kneelib.core import paths
from kneelib.core.profiles import get_profile
from kneelib.data import context, formats, manifest
from kneelib.data.iwoai import DataError
from kneelib.data.nnunet_phantoms import write_nnunet_dataset
from kneelib.data.phantoms import make_dataset
from kneelib.data.phantoms_skmtea import write_skmtea_dataset
from kneelib.data.slices import SliceDataset
from kneelib.report import runner

SUBJECTS = {"train": 3, "valid": 1, "test": 1}
SHAPE = (48, 48, 8)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The tiny phantoms in all three layouts (the same anatomy, scan for scan)."""
    root = tmp_path_factory.mktemp("formats")
    iwoai_root = make_dataset(root / "iwoai", SUBJECTS, SHAPE, seed=2020).parent
    return {"iwoai": iwoai_root, "skm-tea": write_skmtea_dataset(root / "skm", SUBJECTS, SHAPE, 2020),
            "nnunet": write_nnunet_dataset(root / "nn", SUBJECTS, SHAPE, 2020)}


def test_each_layout_is_detected_and_a_foreign_folder_is_refused(folders, tmp_path):
    assert {fmt: formats.detect(root) for fmt, root in folders.items()} == {f: f for f in folders}
    with pytest.raises(DataError, match=f"{tmp_path}: its layout fits none of the formats"):
        formats.detect(tmp_path)


def test_records_carry_their_source_and_iwoai_hashes_as_before(folders):
    fmt, records = formats.read_dataset(folders["skm-tea"], skmtea_echo="echo1")
    assert fmt == "skm-tea" and formats.source_of(records[0]) == formats.Source("skm-tea", (("echo", "echo1"),))
    _, rss = formats.read_dataset(folders["skm-tea"])
    assert manifest.manifest_hash(records) != manifest.manifest_hash(rss)  # another echo: another data set
    _, iwoai_records = formats.read_dataset(folders["iwoai"])
    assert all(r.source == "" for r in iwoai_records)
    plain = [dataclasses.replace(r, source="") for r in iwoai_records]
    assert manifest.manifest_hash(iwoai_records) == manifest.manifest_hash(plain)


def _counts_from_files(fmt: str, root, table: pd.DataFrame) -> dict[tuple[str, str], int]:
    """Voxels per (scan, tissue) read with h5py / nibabel directly, in each format's own label order."""
    out = {}
    for scan in table.scan_id:
        if fmt == "skm-tea":
            (path,) = [p for p in (root / "image_files").glob("*.h5")
                       if _skm_scan_id(root, p.name) == scan]
            with h5py.File(path, "r") as f:
                seg = f["seg"][()]  # (X, Y, Z, 6): patellar, femoral, medial tibial, lateral tibial, menisci
            out[(scan, "femoral_cartilage")] = int(seg[..., 1].sum())
            out[(scan, "tibial_cartilage")] = int((seg[..., 2] | seg[..., 3]).sum())
            out[(scan, "patellar_cartilage")] = int(seg[..., 0].sum())
            out[(scan, "meniscus")] = int((seg[..., 4] | seg[..., 5]).sum())
        else:
            folder = "labelsTs" if (root / "labelsTs" / f"{scan}.nii.gz").exists() else "labelsTr"
            labels = np.asarray(nib.load(root / folder / f"{scan}.nii.gz").dataobj)
            out[(scan, "femoral_cartilage")] = int((labels == 2).sum())
            out[(scan, "tibial_cartilage")] = int(np.isin(labels, (4, 5)).sum())
    return out


def _skm_scan_id(root, file_name: str) -> str:
    for split in ("train", "val", "test"):
        for entry in json.loads((root / "annotations" / "v1.0.0" / f"{split}.json").read_text())["images"]:
            if entry["file_name"] == file_name:
                return entry["scan_id"]
    raise KeyError(file_name)


@pytest.mark.parametrize("fmt", ["skm-tea", "nnunet"])
def test_data_command_counts_the_voxels_the_files_hold(folders, fmt, tmp_path, capsys):
    out = tmp_path / "scans.csv"
    assert runner.main(["data", str(folders[fmt]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"format: {fmt}" in printed and "scans: 10 (train 6 scans / 3 subjects" in printed
    table = pd.read_csv(out)
    assert {"scan_id", "split", "subject", "shape", "spacing_mm", "voxels_femoral_cartilage"} <= set(table.columns)
    assert (table["shape"] == "48x48x8").all() and len(table) == 10
    expected = _counts_from_files(fmt, folders[fmt], table)
    got = {(scan, tissue): int(table.set_index("scan_id").loc[scan, f"voxels_{tissue}"]) for scan, tissue in expected}
    assert got == expected and min(expected.values()) > 0
    assert ("voxels_meniscus" in table) == (fmt == "skm-tea")  # OAIZIB-CM-style labels have no meniscus


def test_data_command_names_the_bad_file_in_one_line(folders, tmp_path, capsys):
    import shutil

    broken = tmp_path / "nn"
    shutil.copytree(folders["nnunet"], broken)
    label = next((broken / "labelsTr").glob("*.nii.gz"))
    label.unlink()
    assert runner.main(["data", str(broken)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and label.name.split(".")[0] in err
    assert runner.main(["data", str(tmp_path / "nowhere")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_the_study_takes_the_tissues_the_data_labels(folders, monkeypatch, tmp_path):
    monkeypatch.setenv(paths.OUTPUTS_ENV, str(tmp_path))
    tiny = get_profile("tiny")
    ctx = context.prepare_data(tiny, folders["nnunet"])
    assert ctx.data_format == "nnunet" and "meniscus" not in ctx.tissues and ctx.in_plane == (48, 48)
    fitted = context.fit_to_data(tiny, ctx, {})
    assert fitted.tissues == ("femoral_cartilage", "tibial_cartilage") and fitted.slice_size == tiny.slice_size
    with pytest.raises(ValueError, match=r"labels \[.*\], not \['meniscus'\]"):
        context.fit_to_data(tiny.replace(tissues=["F", "M"]), ctx, {"tissues": ["F", "M"]})
    # a profile at its volumes' full in-plane size trains at the data's own (48 here), unless slice_size is set
    full = get_profile("tiny", volume_shape=[32, 32, 8])
    assert context.fit_to_data(full, ctx, {}).slice_size == 48
    assert context.fit_to_data(full, ctx, {"slice_size": 32}).slice_size == 32
    # a tissue the data does not label is refused by the slice dataset too, naming it
    with pytest.raises(DataError, match="not 'meniscus'"):
        SliceDataset(ctx.split("train"), ctx.root, "meniscus", 32, ctx.cache_dir)


@pytest.mark.slow
@pytest.mark.parametrize("fmt, nets", [("skm-tea", 9), ("nnunet", 4)])
def test_notebooks_01_to_04_run_on_the_folder(folders, fmt, nets, tmp_path, monkeypatch):
    monkeypatch.setenv(paths.OUTPUTS_ENV, str(tmp_path))
    executed = runner.reproduce("tiny", data_root=str(folders[fmt]), only=["01", "02", "03", "04"], report=False)
    assert [p.stem for p in executed] == ["01_data", "02_scratch", "03_finetune", "04_distances"]
    per_scan = pd.read_csv(tmp_path / "tiny" / "results" / "test_metrics.csv")
    assert per_scan.net.nunique() == nets and per_scan.dice.between(0, 1).all()
    assert len(pd.read_csv(tmp_path / "tiny" / "results" / "tissue_distances.csv")) == (3 if nets == 9 else 1)
