"""Synthetic sagittal DESS knee phantoms written in the exact IWOAI 2019 file layout.

Real OAI data cannot ship (docs/reference.md, "The data"), so these phantoms are the default data.
Each scan is a pair of HDF5 files, ``{split}/{split}_{NNN}_V0{0,1}.im`` (float32 (H, W, D)) and ``.seg``
(uint8 (H, W, D, 6): 0 femoral, 1 lateral tibial, 2 medial tibial, 3 patellar cartilage,
4 lateral, 5 medial meniscus), each with one dataset ``data``, plus ``manifest.csv``.

Array axes (the choice this module makes; the IWOAI files only say "two in-plane axes, then
the sagittal slices"):

- axis 0: rows, superior -> inferior (row 0 is the top of the image, towards the hip);
- axis 1: columns, anterior -> posterior (column 0 is in front of the knee, the patella side);
- axis 2: sagittal slices, lateral -> medial (slice 0 is the lateral side).

The field of view is 140 mm x 140 mm in-plane (spacing 140/H, 140/W mm) and 112 mm across the D
slices (0.7 mm at D = 160, as the OAI DESS protocol).

Anatomy is built from signed distance functions (negative inside) in a *knee frame*: units are
fractions of the 140 mm field of view (times a per-subject size factor), origin at the centre of
the tibial plateau below the intercondylar notch, axes as the array axes (x inferior, y posterior,
z medial), rotated by a few degrees against the image grid. Everything is a vectorized function of
the voxel centres, so the same subject renders at any matrix size.

Sizes are fractions of the field of view, not real millimetres: cartilage is deliberately about
two times thicker than in real knees (about 5 mm, 3-4.5 voxels at 96 px, 1-2 voxels at 32 px) and
the menisci are large, so the small CPU profiles (96 x 96 demo, 32 x 32 tests) still resolve
every tissue. Contrast is DESS-like: fluid brightest, cartilage bright, fat moderately bright,
muscle and marrow intermediate, menisci, tendons, ligaments and cortical bone dark. A smooth coil
bias field, tissue texture, a small Gaussian blur (partial volume) and Rician noise follow.
A single intensity threshold or window cannot find any of the three tissues
(:func:`best_intensity_dice` stays below 0.5): fluid, fat, patellar and tibial cartilage compete
with femoral cartilage, and air, cortex, tendons and ligaments with the menisci. The noise level
is per voxel at every matrix size (real scans gain SNR with bigger voxels; these do not).

Entry points: :func:`make_dataset` (the files), :func:`make_scan` (one scan exactly as written),
:func:`sample_subject` / :func:`follow_up` / :func:`make_volume` (anatomy and rendering),
:func:`best_intensity_dice` / :func:`intensity_dice_by_tissue` (the realism bar).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from scipy.ndimage import gaussian_filter

from kneelib.core.atomic import atomic_path, write_json
from kneelib.data.iwoai import seg_to_tissues
from kneelib.data.manifest import ScanRecord, file_sha256, iwoai_records, read_manifest, write_manifest
from kneelib.names import IWOAI_SUBJECTS, PAPER_TISSUES, SPLITS, TIMEPOINTS

# Bump whenever the rendered arrays change for a given seed, so stored data sets are regenerated.
PHANTOM_VERSION = 2
FOV_MM = 140.0           # in-plane field of view (both in-plane axes)
SLAB_MM = 112.0          # extent of the D sagittal slices
PARAMS_FILE = "phantom_params.json"
MANIFEST_FILE = "manifest.csv"
MIN_INPLANE = 16
MIN_SLICES = 4           # the tiny test profile uses 8 slices
_CHUNK_VOXELS = 1 << 21  # render in slabs of about 2 M voxels to bound memory at full size
_POOL_MIN_VOXELS = 1 << 22  # below ~4 M voxels in all, render in-process
_SCAN_FILE = re.compile(r"^(train|valid|test)_\d{3}_V0[01]\.(im|seg)$")

# ------------------------------------------------------------------------------------ tissues

AIR, MUSCLE, FAT, FLUID, VESSEL, LIGAMENT, CORTEX, MARROW = range(8)
FEM_CART, TIB_CART_LAT, TIB_CART_MED, PAT_CART, MEN_LAT, MEN_MED = range(8, 14)
N_TISSUES = 14
# Tissue code of each .seg channel, in IWOAI channel order.
SEG_CODES = (FEM_CART, TIB_CART_LAT, TIB_CART_MED, PAT_CART, MEN_LAT, MEN_MED)

# DESS-like mean signal per tissue code (fluid = 1) and the relative amplitude of its texture.
_SIGNAL = np.array([0.0, 0.30, 0.60, 1.0, 0.78, 0.08, 0.06, 0.40,
                    0.66, 0.66, 0.66, 0.66, 0.12, 0.12], dtype=np.float32)
_TEXTURE = np.array([0.0, 0.10, 0.07, 0.04, 0.05, 0.20, 0.20, 0.15,
                     0.08, 0.08, 0.08, 0.08, 0.12, 0.12], dtype=np.float32)
_CARTILAGES = (FEM_CART, TIB_CART_LAT, TIB_CART_MED, PAT_CART)
_IS_CARTILAGE = np.isin(np.arange(N_TISSUES), _CARTILAGES).astype(np.float32)
_LAMINAR = 0.3  # cartilage signal runs from 0.85x at the bone to 1.15x at the surface
# Row t: the .seg channels of tissue code t (one lookup turns a tissue map into labels).
_ONE_HOT = (np.arange(N_TISSUES)[:, None] == np.array(SEG_CODES)[None, :]).astype(np.uint8)


# ------------------------------------------------------------------------ subject parameters


@dataclass(frozen=True)
class SubjectParams:
    """Anatomy and contrast of one synthetic subject.

    Lengths are in knee-frame units (fractions of the 140 mm field of view, before ``scale``);
    ``center_mm`` is in mm along array axes (0, 1, 2); angles are in degrees about those axes.
    Compartment pairs are (lateral, medial).
    """

    scale: float                                 # overall size of the knee (the leg excepted)
    center_mm: tuple[float, float, float]        # knee-frame origin in the image (mm)
    angles_deg: tuple[float, float, float]       # small rotation of the knee against the grid
    condyle_radius: float                        # medial condyle's sagittal radius R
    lateral_ratio: float                         # lateral / medial condyle radius
    condyle_z: tuple[float, float]               # compartment centres (lateral < 0 < medial)
    condyle_halfwidth: tuple[float, float]       # condyle half-widths along z
    femoral_cartilage: float                     # cartilage thicknesses
    tibial_cartilage: float
    patellar_cartilage: float
    joint_gap: float                             # fluid film between femoral and tibial cartilage
    meniscus_size: float                         # relative meniscus footprint and height
    effusion: float                              # joint fluid reach beyond the cartilage
    pouch: float                                 # suprapatellar pouch thickness
    tibial_slope_deg: float                      # posterior slope of the plateau
    patella_height: float                        # patella centre above the condyle centres, in R
    fat_thickness: float                         # subcutaneous fat
    leg_halfwidth: tuple[float, float]           # skin outline half-widths (AP, ML), in FOVs
    cyst_radius: float                           # posterior bursa (0: none)
    signal_gain: tuple[float, ...]               # per-tissue signal factor (tissue codes)
    noise_sigma: float                           # Gaussian sigma of the Rician noise (fluid = 1)
    texture_waves: tuple[tuple[float, float, float, float], ...]  # (kx, ky, kz, phase) of texture
    septa_waves: tuple[tuple[float, float, float, float], ...]    # ... of intermuscular fat septa


def _waves(rng: np.random.Generator, n: int, wavelength: tuple[float, float]) -> tuple:
    """``n`` random plane waves (kx, ky, kz, phase) with wavelengths in ``wavelength`` (knee units)."""
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    k = 2 * np.pi / rng.uniform(*wavelength, size=(n, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    return tuple(tuple(float(v) for v in row) for row in np.hstack([direction * k, phase]))


def sample_subject(rng: np.random.Generator | int) -> SubjectParams:
    """Draw one subject's anatomy and contrast from ``rng`` (a Generator or an int seed)."""
    rng = np.random.default_rng(rng)
    u = rng.uniform
    return SubjectParams(
        scale=u(0.94, 1.06),
        center_mm=(FOV_MM * u(0.56, 0.6), FOV_MM * u(0.52, 0.56), SLAB_MM / 2 + FOV_MM * u(-0.02, 0.02)),
        angles_deg=(u(-3, 3), u(-2, 2), u(-6, 6)),
        condyle_radius=u(0.19, 0.21),
        lateral_ratio=u(0.9, 0.97),
        condyle_z=(-u(0.17, 0.19), u(0.17, 0.19)),
        condyle_halfwidth=(u(0.095, 0.105), u(0.105, 0.115)),
        femoral_cartilage=u(0.033, 0.042),
        tibial_cartilage=u(0.029, 0.036),
        patellar_cartilage=u(0.033, 0.042),
        joint_gap=u(0.008, 0.012),
        meniscus_size=u(0.9, 1.1),
        effusion=u(0.02, 0.045),
        pouch=u(0.02, 0.06),
        tibial_slope_deg=u(3, 9),
        patella_height=u(0.05, 0.3),
        fat_thickness=u(0.03, 0.07),
        leg_halfwidth=(u(0.44, 0.5), u(0.4, 0.46)),
        cyst_radius=u(0.02, 0.04) if rng.random() < 0.3 else 0.0,
        signal_gain=tuple(float(g) for g in u(0.96, 1.04, size=N_TISSUES)),
        noise_sigma=u(0.04, 0.05),
        texture_waves=_waves(rng, 8, (0.03, 0.15)),
        septa_waves=_waves(rng, 3, (0.4, 1.0)),
    )


def follow_up(subject: SubjectParams, rng: np.random.Generator) -> SubjectParams:
    """The subject at V01: slight cartilage thinning, a small repositioning, a new effusion."""
    # Python floats throughout: NumPy scalars would promote the float32 grids to float64.
    thin = [1.0 - float(v) for v in rng.uniform(0.02, 0.07, size=3)]
    return dataclasses.replace(
        subject,
        center_mm=tuple(float(c) for c in np.add(subject.center_mm, rng.normal(0, 0.5, size=3))),
        angles_deg=tuple(float(a) for a in np.add(subject.angles_deg, rng.normal(0, 0.5, size=3))),
        femoral_cartilage=subject.femoral_cartilage * thin[0],
        tibial_cartilage=subject.tibial_cartilage * thin[1],
        patellar_cartilage=subject.patellar_cartilage * thin[2],
        effusion=subject.effusion * float(rng.uniform(0.8, 1.25)),
        pouch=subject.pouch * float(rng.uniform(0.8, 1.25)),
    )


# ------------------------------------------------------------------ signed distance helpers


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth union of two SDFs with blend radius ``k`` (fillets instead of sharp creases)."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def _smax(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth intersection of two SDFs with blend radius ``k``."""
    return -_smin(-a, -b, k)


def _ellipse(a: np.ndarray, b: np.ndarray, ra, rb) -> np.ndarray:
    """Approximate SDF of the ellipse (a/ra)^2 + (b/rb)^2 = 1; exact on the axes, good near it."""
    k0 = np.hypot(a / ra, b / rb)
    k1 = np.hypot(a / (ra * ra), b / (rb * rb))
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-6)


def _ellipsoid(x, y, z, radii: Sequence[float]) -> np.ndarray:
    """Approximate SDF of an axis-aligned ellipsoid centred at the origin."""
    rx, ry, rz = radii
    k0 = np.sqrt((x / rx) ** 2 + (y / ry) ** 2 + (z / rz) ** 2)
    k1 = np.sqrt((x / rx**2) ** 2 + (y / ry**2) ** 2 + (z / rz**2) ** 2)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-6)


def _condyle(x, y, z, xc: float, zc: float, radius: float, halfwidth: float) -> np.ndarray:
    """Approximate SDF of a femoral condyle, centred at (xc, 0, zc), +-``halfwidth`` wide in z.

    Each sagittal section is a disc (5 % longer anteroposteriorly: condyles are oval) whose
    radius follows radius * sqrt(1 - (dz / halfwidth)^4): flat at the bottom in coronal view,
    rounded at the sides, with no flat side face (a slice along a flat face would show a
    large disc of cortical bone). The distance is measured in-plane, exact at dz = 0.
    """
    t = np.minimum(np.abs(z - zc) * (1.0 / halfwidth), 1.0)
    t2 = t * t
    section = radius * np.sqrt(1.0 - t2 * t2)
    return np.maximum(np.hypot(x - xc, y * (1 / 1.05)) - section, np.abs(z - zc) - halfwidth)


def _segment(x, y, z, a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """Distance from each point to the 3D segment a-b."""
    # Python floats keep float32 arrays float32 (NumPy scalars would promote them to float64).
    a = [float(v) for v in a]
    ab = [float(v) - u for v, u in zip(b, a)]
    inv = 1.0 / sum(v * v for v in ab)
    dx, dy, dz = x - a[0], y - a[1], z - a[2]
    t = np.clip((dx * ab[0] + dy * ab[1] + dz * ab[2]) * inv, 0.0, 1.0)
    return np.sqrt((dx - t * ab[0]) ** 2 + (dy - t * ab[1]) ** 2 + (dz - t * ab[2]) ** 2)


def _band(x, y, z, a: Sequence[float], b: Sequence[float], radius: float, halfwidth: float) -> np.ndarray:
    """SDF of a flat tendon: a sagittal rod from a to b ((x, y) pairs), +-``halfwidth`` wide in z."""
    return np.maximum(_segment(x, y, 0.0, (*a, 0.0), (*b, 0.0)) - radius, np.abs(z) - halfwidth)


def _smoothstep(t):
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


# ----------------------------------------------------------------------------- the anatomy


@dataclass(frozen=True)
class _Geometry:
    """Derived knee-frame geometry of one subject (see :func:`_geometry`)."""

    p: SubjectParams
    radius: tuple[float, float]      # condyle radii (lateral, medial)
    xc: tuple[float, float]          # condyle centre heights (x, inferior positive)
    xc_mean: float
    patella: tuple[float, float, float, float, float]  # centre x, y and semi-axes x, y, z


def _femur(x, y, z, radius, xc, p: SubjectParams) -> np.ndarray:
    """SDF of the distal femur: two condyles joined to the metaphysis and the trochlea.

    The metaphysis' cross-section is an ellipse that narrows upwards to the shaft; below the
    condyle centres it is cut by the trochlear groove (a sagittal circle a little inside the
    condyles) and by the roof of the intercondylar notch (Blumensaat's line, 45 degrees),
    which leaves the notch open posteriorly.
    """
    r, x0 = p.condyle_radius, float(np.mean(xc))
    cond = [_condyle(x, y, z, xc[k], p.condyle_z[k], radius[k], p.condyle_halfwidth[k]) for k in (0, 1)]
    t = _smoothstep((x0 - x) / (3.0 * r))
    ml = max(abs(c) + w for c, w in zip(p.condyle_z, p.condyle_halfwidth)) - 0.01
    shaft = _ellipse(y + 0.15 * r, z, r * (0.85 - 0.3 * t), ml + (0.55 * r - ml) * t)
    groove = np.minimum(np.hypot(x - x0, y) - 0.93 * r, x - x0)
    roof = (x - x0 - 0.55 * r + y + 0.5 * r) / math.sqrt(2.0)
    shaft = np.maximum(np.maximum(shaft, groove), roof)
    return _smin(_smin(cond[0], cond[1], 0.02), shaft, 0.03)


def _plateau_height(y, z, p: SubjectParams) -> np.ndarray:
    """x of the tibial plateau surface: sloping down posteriorly, with the tibial spines in the notch."""
    r = p.condyle_radius
    spine = 0.18 * r * np.exp(-((z / (0.25 * r)) ** 2) - ((y + 0.1 * r) / (0.3 * r)) ** 2)
    return math.tan(math.radians(p.tibial_slope_deg)) * y - spine


def _tibia(x, y, z, p: SubjectParams) -> np.ndarray:
    """SDF of the proximal tibia: the plateau on a metaphysis that narrows to the shaft."""
    slope, r = math.radians(p.tibial_slope_deg), p.condyle_radius
    top = (_plateau_height(y, z, p) - x) * math.cos(slope)
    t = _smoothstep((x - 0.1 * r) / (3.0 * r))
    ml = max(abs(c) + 1.2 * w for c, w in zip(p.condyle_z, p.condyle_halfwidth))
    side = _ellipse(y - 0.1 * r, z, r * (1.1 - 0.45 * t), ml + (0.6 * r - ml) * t)
    return _smax(top, side, 0.015)


def _geometry(p: SubjectParams) -> _Geometry:
    """Condyle centres and the patella's place, which depend on the other anatomy."""
    r = p.condyle_radius
    lat, med = r * p.lateral_ratio, r
    # Both condyles rest the same distance above the plateau: tibial cartilage, gap, femoral cartilage.
    xc = tuple(-(p.tibial_cartilage + p.joint_gap + p.femoral_cartilage + rk) for rk in (lat, med))
    x0 = float(np.mean(xc))
    xp = x0 - p.patella_height * r
    # The patella rides on the trochlea: find the femur's most anterior point at its height.
    ys = np.linspace(-2 * r, 0.0, 801)
    front = min(float(ys[np.argmax(_femur(np.full_like(ys, xp), ys, np.full_like(ys, zz), (lat, med), xc, p)
                                   < 0)]) for zz in (-0.3 * r, 0.0, 0.3 * r))
    ax, ay, az = 0.8 * r, 0.38 * r, 0.8 * r
    yp = front - p.femoral_cartilage - p.joint_gap - p.patellar_cartilage - ay
    return _Geometry(p, (lat, med), xc, x0, (xp, yp, ax, ay, az))


def _compartment_radius(y, z, k: int, p: SubjectParams) -> np.ndarray:
    """Normalized radius of the meniscus / tibial-cartilage footprint of compartment ``k`` (axial plane).

    1 is the meniscus' outer rim; the posterior horn (y > 0) reaches further than the anterior.
    """
    m, r = p.meniscus_size, p.condyle_radius
    inv_ay = np.where(y > 0, np.float32(1 / ((0.92 + 0.05 * k) * r * m)), np.float32(1 / (0.8 * r * m)))
    return np.hypot(y * inv_ay, (z - p.condyle_z[k]) * (1 / (1.1 * p.condyle_halfwidth[k] * m)))


def _leg(x, y, z, g: _Geometry) -> np.ndarray:
    """SDF of the skin: an elliptical leg cross-section, widening a little above and below the knee."""
    p = g.p
    xp, yp, _, ay, _ = g.patella
    half_ap, half_ml = (h / p.scale for h in p.leg_halfwidth)
    centre = yp - ay - 0.035 + half_ap  # 3.5 % of the FOV of prepatellar soft tissue
    widen = 1.0 + 0.3 * (x - xp) ** 2
    return _ellipse(y - centre, z, half_ap * widen, half_ml * widen)


def _texture(x, y, z, waves) -> np.ndarray:
    """A smooth random field, about unit variance: a sum of plane waves in knee coordinates."""
    field = np.zeros(np.broadcast(x, y, z).shape, dtype=np.float32)
    for kx, ky, kz, phase in waves:
        field += np.cos(kx * x + ky * y + kz * z + phase)
    return field * np.float32(math.sqrt(2.0 / len(waves)))


def _soft_tissue(tissue, x, y, z, g: _Geometry, d_fem) -> np.ndarray:
    """Paint skin, muscle, fat pads, the suprapatellar pouch, a vessel and a cyst; return the leg mask."""
    p, r, x0 = g.p, g.p.condyle_radius, g.xc_mean
    xp, yp, ax, ay, _ = g.patella
    leg_d = _leg(x, y, z, g)
    leg = leg_d < 0
    tissue[leg] = MUSCLE
    # Intermuscular fat septa: thin sheets along a level set of a slow random field.
    tissue[leg & (np.abs(_texture(x, y, z, p.septa_waves)) < 0.05)] = FAT
    tissue[leg & (leg_d > -p.fat_thickness)] = FAT
    hoffa = _ellipsoid(x + 0.05 * r, y + 1.25 * r, z, (0.5 * r, 0.35 * r, r)) < 0
    popliteal = _ellipsoid(x + 0.1 * r, y - 1.5 * r, z - 0.05 * r, (0.7 * r, 0.35 * r, 0.65 * r)) < 0
    notch_gap = min(abs(c) - w for c, w in zip(p.condyle_z, p.condyle_halfwidth))
    notch = (np.abs(z) < notch_gap) & (x > x0 - 0.6 * r) & (x < 0.0) & (np.abs(y) < r)
    tissue[leg & (hoffa | popliteal | notch)] = FAT
    # Prefemoral fat, then the suprapatellar pouch in front of it, above the patella.
    above = (y < -0.2 * r) & (x < xp - 0.3 * ax) & (x > xp - ax - 1.1 * r) & (np.abs(z) < 1.3 * r)
    tissue[leg & above & (d_fem > 0) & (d_fem < 0.12 * r)] = FAT
    tissue[leg & above & (d_fem >= 0.12 * r) & (d_fem < 0.12 * r + p.pouch)] = FLUID
    tissue[leg & (np.hypot(y - 1.6 * r, z - 0.1 * r) < 0.11 * r)] = VESSEL
    if p.cyst_radius > 0:
        c = p.cyst_radius
        cyst = _ellipsoid(x - g.xc[1] + 0.2 * r, y - 1.1 * r, z - p.condyle_z[1], (1.6 * c, c, c))
        tissue[leg & (cyst < 0)] = FLUID
    return leg


def _tendons(tissue, leg, x, y, z, g: _Geometry) -> None:
    """Paint the quadriceps and patellar tendons (dark), which run far above and below the joint."""
    r = g.p.condyle_radius
    xp, yp, ax, ay, _ = g.patella
    quad = _band(x, y, z, (xp - 0.9 * ax, yp + 0.2 * ay), (xp - ax - 3 * r, yp + 0.5 * r), 0.14 * r, 0.6 * r)
    patellar = _band(x, y, z, (xp + 0.9 * ax, yp - 0.1 * ay), (1.2 * r, -0.6 * r), 0.11 * r, 0.5 * r)
    tissue[leg & ((quad < 0) | (patellar < 0))] = LIGAMENT


def _ligaments(tissue, leg, x, y, z, g: _Geometry) -> None:
    """Paint the ligaments (dark): cruciates in the notch, collaterals at the sides."""
    p, r, x0 = g.p, g.p.condyle_radius, g.xc_mean
    (zl, zm), (wl, wm) = p.condyle_z, p.condyle_halfwidth
    acl = _segment(x, y, z, (-0.02 * r, -0.3 * r, -0.05 * r), (x0 - 0.1 * r, 0.55 * r, zl + wl + 0.02 * r))
    bend = (x0 + 0.2 * r, 0.45 * r, 0.15 * r)
    pcl = np.minimum(_segment(x, y, z, (0.15 * r, 0.85 * r, 0.05 * r), bend),
                     _segment(x, y, z, bend, (x0 + 0.45 * r, -0.2 * r, zm - wm - 0.02 * r)))
    mcl = np.maximum(np.maximum(np.abs(z - zm - wm - 0.2 * r) - 0.06 * r, np.abs(y) - 0.35 * r),
                     np.abs(x - (x0 + 1.3 * r) / 2) - (1.3 * r - x0) / 2)
    lcl = _segment(x, y, z, (x0 - 0.2 * r, 0.1 * r, zl - wl - 0.15 * r),
                   (0.5 * r, 0.7 * r, zl - wl - 0.2 * r))
    dark = (acl < 0.13 * r) | (pcl < 0.16 * r) | (mcl < 0) | (lcl < 0.09 * r)
    tissue[leg & dark] = LIGAMENT


def _menisci(tissue, z, g: _Geometry, d_fem, height, rho) -> None:
    """Paint the C-shaped wedge menisci of both compartments.

    In the axial plane each is a ring (normalized radius 0.4-1 of the compartment footprint),
    open towards the notch (wider for the medial, C-shaped one). Across the ring the meniscus
    rises from nothing at the inner edge to a thick outer rim and fills the wedge up to the
    femoral cartilage, so a sagittal slice shows two triangles (the horns).
    """
    p = g.p
    for k, code, opening in ((0, MEN_LAT, 0.85), (1, MEN_MED, 0.6)):
        rk = rho[k]
        towards_notch = -np.sign(p.condyle_z[k]) * (z - p.condyle_z[k]) / (1.1 * p.condyle_halfwidth[k])
        ring = (rk > 0.4) & (rk < 1.0) & (towards_notch < opening * rk)
        wedge = 0.45 * p.condyle_radius * p.meniscus_size * (rk - 0.4) / 0.6 + _tibial_thickness(rk, p)
        tissue[ring & (height > 0) & (height < wedge) & (d_fem > p.femoral_cartilage)] = code


def _tibial_thickness(rho, p: SubjectParams) -> np.ndarray:
    """Tibial cartilage thickness over the footprint: full inside rho 0.8, tapering to 0 at the rim."""
    return p.tibial_cartilage * np.sqrt(np.clip((1.0 - rho**2) / 0.36, 0.0, 1.0))


def _bone(tissue, d) -> None:
    """Paint a bone from its SDF: a dark cortical rim (1.2 % of the FOV) around the marrow."""
    tissue[d < 0] = CORTEX
    tissue[d < -0.012] = MARROW


def _cartilage(tissue, x, y, z, g: _Geometry, d_fem, d_pat, height, rho) -> np.ndarray:
    """Paint tibial, patellar and femoral cartilage (femoral last, so it wins any contact).

    Returns the relative depth in the cartilage, float32 like x: 0 at the bone, 1 at the
    articular surface (0 outside cartilage), for the laminar signal of DESS cartilage.
    """
    p, r, x0 = g.p, g.p.condyle_radius, g.xc_mean
    xp, yp, ax, ay, az = g.patella
    depth = np.zeros(x.shape, dtype=np.float32)
    for k, code in ((0, TIB_CART_LAT), (1, TIB_CART_MED)):
        thick = _tibial_thickness(rho[k], p)
        m = (rho[k] < 1.0) & (height > 0) & (height < thick)
        tissue[m] = code
        depth[m] = height[m] / thick[m]
    facet = (y > yp + 0.2 * ay) & (np.abs(x - xp) < 0.75 * ax) & (np.abs(z) < 0.85 * az)
    m = facet & (d_pat > 0) & (d_pat < p.patellar_cartilage)
    tissue[m] = PAT_CART
    depth[m] = d_pat[m] / p.patellar_cartilage
    on_condyle = np.zeros(x.shape, dtype=bool)
    for zk, wk in zip(p.condyle_z, p.condyle_halfwidth):
        on_condyle |= np.abs(z - zk) < 0.8 * wk
    trochlea = (np.abs(z) < max(abs(c) for c in p.condyle_z)) & (y < -0.3 * r)
    # Anterior: up the trochlea; posterior: up the posterior condyle; never over the top.
    top = np.where(y < -0.3 * r, x0 - 1.1 * r, np.where(y > 0.2 * r, x0 - 0.55 * r, x0))
    m = (on_condyle | trochlea) & (x > top) & (d_fem > 0) & (d_fem < p.femoral_cartilage)
    tissue[m] = FEM_CART
    depth[m] = d_fem[m] / p.femoral_cartilage
    return depth


def _joint_fluid(tissue, leg, d_fem, d_tib, d_pat, p: SubjectParams) -> None:
    """Paint synovial fluid where two articular surfaces are close: tibiofemoral and patellofemoral."""
    tf = (d_fem > 0) & (d_tib > 0) & (d_fem + d_tib < p.femoral_cartilage + p.tibial_cartilage
                                       + p.joint_gap + p.effusion)
    pf = (d_fem > 0) & (d_pat > 0) & (d_fem + d_pat < p.femoral_cartilage + p.patellar_cartilage
                                       + p.joint_gap + p.effusion)
    tissue[leg & (tf | pf)] = FLUID


def tissue_map(x: np.ndarray, y: np.ndarray, z: np.ndarray, subject: SubjectParams) -> np.ndarray:
    """Tissue codes (uint8, the module's ``AIR`` ... ``MEN_MED``) at knee-frame points x, y, z.

    x, y, z: float32 arrays of one shape (knee-frame units: fractions of the 140 mm FOV / scale;
    x inferior, y posterior, z medial). Later layers win: soft tissue, fluid, ligaments, menisci,
    bone, cartilage.
    """
    return _anatomy(x, y, z, subject)[0]


def _anatomy(x, y, z, subject: SubjectParams) -> tuple[np.ndarray, np.ndarray]:
    """Tissue codes (uint8) and relative cartilage depth (float32) at knee-frame points, as tissue_map."""
    g = _geometry(subject)
    tissue = np.zeros(x.shape, dtype=np.uint8)
    d_fem = _femur(x, y, z, g.radius, g.xc, subject)
    d_tib = _tibia(x, y, z, subject)
    leg = _soft_tissue(tissue, x, y, z, g, d_fem)
    _tendons(tissue, leg, x, y, z, g)
    # Everything small lies in a box around the joint: work on those voxels only (speed).
    roi = _joint_box(x, y, z, g)
    local = [a[roi] for a in (tissue, leg, x, y, z, d_fem, d_tib)]
    depth = np.zeros(x.shape, dtype=np.float32)
    depth[roi] = _joint(*local, g)
    tissue[roi] = local[0]
    for d in (d_tib, d_fem):
        _bone(tissue, np.where(roi, np.float32(1.0), d))
    return tissue, depth


def _joint_box(x, y, z, g: _Geometry) -> np.ndarray:
    """Bool mask of the knee-frame box that holds the patella, menisci, cartilage and ligaments."""
    p, r, x0 = g.p, g.p.condyle_radius, g.xc_mean
    xp, yp, ax, ay, _ = g.patella
    ml = max(abs(c) + w for c, w in zip(p.condyle_z, p.condyle_halfwidth)) + 0.35 * r
    front = min(yp - ay, -1.05 * r) - 0.05
    back = 1.05 * r + p.femoral_cartilage + 0.05
    top = min(xp - ax, x0 - 1.1 * r) - p.femoral_cartilage - 0.05
    return (x > top) & (x < 1.4 * r) & (y > front) & (y < back) & (np.abs(z) < ml)


def _joint(tissue, leg, x, y, z, d_fem, d_tib, g: _Geometry) -> np.ndarray:
    """Paint the joint on (flat) arrays of its box: fluid, ligaments, menisci, bones, cartilage.

    Returns the relative cartilage depth (float32 like x), as :func:`_cartilage`.
    """
    p, r = g.p, g.p.condyle_radius
    xp, yp, ax, ay, az = g.patella
    d_pat = _ellipsoid(x - xp, y - yp, z, (ax, ay, az))
    height = _plateau_height(y, z, p) - x  # height above the plateau (knee units)
    rho = [_compartment_radius(y, z, k, p) for k in (0, 1)]
    _joint_fluid(tissue, leg, d_fem, d_tib, d_pat, p)
    _ligaments(tissue, leg, x, y, z, g)
    _menisci(tissue, z, g, d_fem, height, rho)
    fibula = _ellipsoid(x - 0.6 * r, y - 0.75 * r, z - p.condyle_z[0] + 0.5 * p.condyle_halfwidth[0],
                        (0.3 * r, 0.25 * r, 0.25 * r))
    for d in (fibula, d_tib, d_fem, d_pat):
        _bone(tissue, d)
    return _cartilage(tissue, x, y, z, g, d_fem, d_pat, height, rho)


# ------------------------------------------------------------------------------- rendering


def phantom_spacing_mm(shape: Sequence[int]) -> tuple[float, float, float]:
    """Voxel spacing (mm) of a phantom of ``shape`` (H, W, D): 140/H, 140/W, 112/D."""
    h, w, d = _check_shape(shape)
    return (FOV_MM / h, FOV_MM / w, SLAB_MM / d)


def _rotation(angles_deg: Sequence[float]) -> np.ndarray:
    """Rotation matrix (3, 3) for small rotations about axes 0, 1, 2 (degrees), applied in that order."""
    a, b, c = np.radians(angles_deg)
    rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _knee_coords(shape, k0: int, k1: int, subject: SubjectParams) -> tuple[np.ndarray, ...]:
    """Knee-frame coordinates (x, y, z), float32 (H, W, k1 - k0), of the voxel centres of slices k0:k1."""
    spacing = phantom_spacing_mm(shape)
    axes = [(np.arange(a, b, dtype=np.float64) + 0.5) * s - c
            for (a, b), s, c in zip(((0, shape[0]), (0, shape[1]), (k0, k1)), spacing, subject.center_mm)]
    d = (axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :])
    rot = _rotation(subject.angles_deg) / (subject.scale * FOV_MM)
    # Knee frame = R^T (p - c) / (scale * FOV): column i of R gives knee axis i.
    return tuple((rot[0, i] * d[0] + rot[1, i] * d[1] + rot[2, i] * d[2]).astype(np.float32)
                 for i in range(3))


def _bias_field(shape, k0: int, k1: int, coef: Sequence[float]) -> np.ndarray:
    """Smooth multiplicative coil sensitivity, float32 (H, W, k1-k0): exp of a quadratic in [-1, 1]^3."""
    v = [np.linspace(-1, 1, n, dtype=np.float32) for n in shape]
    v[2] = v[2][k0:k1]
    g = (v[0][:, None, None], v[1][None, :, None], v[2][None, None, :])
    log_b = sum(coef[i] * g[i] for i in range(3))
    log_b = log_b + sum(coef[3 + i] * g[i] * g[i] for i in range(3))
    log_b = log_b + coef[6] * g[0] * g[1] + coef[7] * g[0] * g[2] + coef[8] * g[1] * g[2]
    return np.exp(log_b).astype(np.float32)


def _check_shape(shape) -> tuple[int, int, int]:
    ok = (isinstance(shape, Sequence) and len(shape) == 3
          and all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in shape))
    if not ok or min(shape[:2]) < MIN_INPLANE or shape[2] < MIN_SLICES:
        raise ValueError(f"shape={shape!r} must be 3 ints (H, W, D) with H, W >= {MIN_INPLANE} "
                         f"and D >= {MIN_SLICES}")
    return int(shape[0]), int(shape[1]), int(shape[2])


def render(shape: Sequence[int], subject: SubjectParams,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Render one scan of ``subject`` on an (H, W, D) grid.

    Returns the image, float32 (H, W, D) (arbitrary units, fluid about 1), and the labels,
    uint8 (H, W, D, 6) in IWOAI channel order. ``rng`` draws the bias field and the noise.
    """
    shape = _check_shape(shape)
    # Bias: linear terms up to +-15 %, quadratic and cross terms up to +-8 % (log scale).
    coef = [float(c) for c in np.concatenate([rng.uniform(-0.15, 0.15, 3), rng.uniform(-0.08, 0.08, 6)])]
    gain = np.asarray(subject.signal_gain, dtype=np.float32) * _SIGNAL
    clean = np.empty(shape, dtype=np.float32)
    seg = np.empty((*shape, 6), dtype=np.uint8)
    step = max(1, _CHUNK_VOXELS // (shape[0] * shape[1]))
    for k0 in range(0, shape[2], step):
        k1 = min(shape[2], k0 + step)
        x, y, z = _knee_coords(shape, k0, k1, subject)
        tissue, depth = _anatomy(x, y, z, subject)
        texture = 1.0 + _TEXTURE[tissue] * _texture(x, y, z, subject.texture_waves)
        # DESS cartilage is laminar: darker near the bone (short T2), brighter at the surface.
        layers = 1.0 + _LAMINAR * _IS_CARTILAGE[tissue] * (depth - 0.5)
        clean[:, :, k0:k1] = gain[tissue] * texture * layers * _bias_field(shape, k0, k1, coef)
        seg[:, :, k0:k1] = _ONE_HOT[tissue]
    # Partial volume: blur less across the (thicker) slices than in-plane, in voxels.
    image = gaussian_filter(clean, sigma=(0.55, 0.55, 0.3), mode="nearest")
    sigma = np.float32(subject.noise_sigma)
    real = image + sigma * rng.standard_normal(shape, dtype=np.float32)
    imag = sigma * rng.standard_normal(shape, dtype=np.float32)
    return np.hypot(real, imag).astype(np.float32), seg


def make_volume(shape: Sequence[int], subject: SubjectParams, timepoint: int = 0,
                rng: np.random.Generator | int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """One scan of ``subject`` at ``timepoint`` (0 = V00 baseline, 1 = V01 follow-up).

    ``rng`` (Generator or seed) draws the V01 anatomy change, the bias field and the noise.
    Returns image float32 (H, W, D) and seg uint8 (H, W, D, 6), as :func:`render`.
    """
    if timepoint not in (0, 1):
        raise ValueError(f"timepoint={timepoint!r} must be 0 (V00) or 1 (V01)")
    rng = np.random.default_rng(rng)
    if timepoint == 1:
        subject = follow_up(subject, rng)
    return render(shape, subject, rng)


def _split_index(split: str) -> int:
    if split not in SPLITS:
        raise ValueError(f"split={split!r} must be one of {SPLITS}")
    return SPLITS.index(split)


def subject_params(seed: int, split: str, index: int) -> SubjectParams:
    """The anatomy of subject ``{split}_{index:03d}`` of the data set with ``seed``."""
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or index < 1:
        raise ValueError(f"index={index!r} must be an int >= 1 (subjects are numbered from 001)")
    seq = np.random.SeedSequence(seed, spawn_key=(_split_index(split), index))
    return sample_subject(np.random.default_rng(seq))


def make_scan(shape: Sequence[int], seed: int, split: str, index: int,
              timepoint: int) -> tuple[np.ndarray, np.ndarray]:
    """Scan ``{split}_{index:03d}_V0{timepoint}`` exactly as :func:`make_dataset` writes it.

    Each scan's random stream derives from (seed, split, index, timepoint) alone, so any scan
    can be made without the others. Returns image float32 (H, W, D) and seg uint8 (H, W, D, 6).
    """
    if timepoint not in (0, 1):
        raise ValueError(f"timepoint={timepoint!r} must be 0 (V00) or 1 (V01)")
    subject = subject_params(seed, split, index)
    seq = np.random.SeedSequence(seed, spawn_key=(_split_index(split), index, 1 + timepoint))
    return make_volume(shape, subject, timepoint, np.random.default_rng(seq))


# ------------------------------------------------------------------------ the realism bar


def best_intensity_dice(image: np.ndarray, mask: np.ndarray, levels: int = 64) -> float:
    """Best Dice any intensity window [lo, hi] reaches against ``mask``.

    image: array of intensities; mask: bool array of the same shape. Candidate bounds are the
    image's quantiles at ``levels`` + 1 evenly spaced levels; single thresholds (lo = min or
    hi = max) are among the windows. A tissue that intensity alone can find scores near 1.
    """
    image, mask = np.asarray(image), np.asarray(mask, dtype=bool)
    if image.shape != mask.shape:
        raise ValueError(f"image shape {image.shape} and mask shape {mask.shape} differ")
    bins, n_bins = _quantile_bins(image, levels)
    return _best_window(bins, n_bins, mask.ravel())


def intensity_dice_by_tissue(image: np.ndarray, seg: np.ndarray, levels: int = 64,
                             tissues: Sequence[str] = PAPER_TISSUES) -> dict[str, float]:
    """:func:`best_intensity_dice` of each of ``tissues`` (default the paper's); image (H, W, D), seg (H, W, D, 6)
    in IWOAI channel order. Returns tissue name -> Dice."""
    bins, n_bins = _quantile_bins(np.asarray(image), levels)
    return {t: _best_window(bins, n_bins, mask.ravel()) for t, mask in seg_to_tissues(seg, tissues).items()}


def _quantile_bins(image: np.ndarray, levels: int) -> tuple[np.ndarray, int]:
    """Index (int, flat like image) of each voxel's bin between the image's quantiles, and the bin count."""
    if levels < 1:
        raise ValueError(f"levels={levels} must be >= 1")
    edges = np.unique(np.quantile(image, np.linspace(0.0, 1.0, levels + 1)))
    n_bins = max(len(edges) - 1, 1)
    # The top edge is the maximum: its voxels belong to the last bin, not one past it.
    return np.clip(np.searchsorted(edges, image.ravel(), side="right") - 1, 0, n_bins - 1), n_bins


def _best_window(bins: np.ndarray, n_bins: int, mask: np.ndarray) -> float:
    """Best Dice over windows of consecutive bins (all i < j at once from cumulative counts)."""
    n_mask = int(mask.sum())
    if n_mask == 0:
        return 0.0
    total = np.concatenate([[0], np.cumsum(np.bincount(bins, minlength=n_bins))])
    inside = np.concatenate([[0], np.cumsum(np.bincount(bins[mask], minlength=n_bins))])
    selected = total[None, :] - total[:, None]   # voxels in bins i..j-1
    hit = inside[None, :] - inside[:, None]
    dice = 2.0 * hit / np.maximum(selected + n_mask, 1)
    return float(np.triu(dice, 1).max())


# ----------------------------------------------------------------------------- the data set


def _check_subjects(subjects) -> dict[str, int]:
    if not isinstance(subjects, Mapping) or not subjects:
        raise ValueError(f"subjects={subjects!r} must be a non-empty dict of split -> count")
    for split, n in subjects.items():
        if split not in SPLITS:
            raise ValueError(f"subjects: unknown split {split!r}; expected some of {SPLITS}")
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 1 <= n <= 999:
            raise ValueError(f"subjects[{split!r}]={n!r} must be an int from 1 to 999")
    return {s: int(subjects[s]) for s in SPLITS if s in subjects}


def _check_seed(seed) -> int:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative int")
    return int(seed)


def _write_h5(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as the dataset ``data`` of a new HDF5 file, atomically (contiguous, as IWOAI)."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("data", data=array)


def _stored_params(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _complete(out_dir: Path, records: list[ScanRecord]) -> bool:
    """Whether ``out_dir`` holds a manifest listing exactly ``records``' scans, all files present."""
    try:
        stored = read_manifest(out_dir / MANIFEST_FILE)
    except (OSError, ValueError):
        return False
    same = [(r.scan_id, r.image, r.seg) for r in stored] == [(r.scan_id, r.image, r.seg) for r in records]
    # The CSV keeps 6 significant digits of the spacing.
    same = same and all(np.allclose(a.spacing_mm, b.spacing_mm, rtol=1e-5) for a, b in zip(stored, records))
    return same and all((out_dir / f).is_file() for r in stored for f in (r.image, r.seg))


def _scan_files(out_dir: Path) -> list[Path]:
    """Files under ``out_dir`` named like phantom scans (``{split}/{split}_NNN_V0x.im|seg``)."""
    folders = [out_dir / s for s in SPLITS if (out_dir / s).is_dir()]
    return [f for d in folders for f in d.iterdir() if _SCAN_FILE.match(f.name)]


def _prepare(out_dir: Path, params: dict) -> bool:
    """Make ``out_dir`` ready for (re)generation; return whether existing scan files may be kept.

    Matching stored parameters mean an interrupted run of the same data set: finished scans
    (written atomically) are kept. Otherwise the old phantom scans are removed. A folder with
    scan files but no phantom parameters is not ours (it may hold real data): refuse it.
    """
    stored = _stored_params(out_dir / PARAMS_FILE)
    if stored is None and (_scan_files(out_dir) or (out_dir / MANIFEST_FILE).exists()):
        raise FileExistsError(f"{out_dir} holds scans or a manifest but no {PARAMS_FILE}: "
                              "not a phantom folder, refusing to overwrite it")
    (out_dir / MANIFEST_FILE).unlink(missing_ok=True)  # the manifest marks a complete data set
    if stored == params:
        return True
    for f in _scan_files(out_dir):
        f.unlink()
    write_json(out_dir / PARAMS_FILE, params)
    return False


def make_dataset(out_dir: str | os.PathLike, subjects: Mapping[str, int] | None = None,
                 shape: Sequence[int] = (384, 384, 160), seed: int = 2020, progress: bool = False,
                 workers: int | None = None) -> Path:
    """Write a phantom data set in the IWOAI layout under ``out_dir``; return the manifest path.

    subjects: ``{split: count}`` (default 60/14/14, as IWOAI); every subject gets V00 and V01.
    shape: (H, W, D) voxels; spacing 140/H, 140/W, 112/D mm, recorded in the manifest.
    seed: the data set's seed; the same seed gives the same arrays, scan by scan.
    progress: show a tqdm progress bar. workers: processes that render scans (default: the CPU
    count, at most 8; small sets render in-process); the files do not depend on it.
    A complete data set with the same parameters (``phantom_params.json``) is reused untouched;
    an interrupted one is completed; one with other parameters is replaced. Files are written
    atomically and the manifest (with sha256 of each file) last. Bad parameters raise ValueError.
    """
    subjects = _check_subjects(IWOAI_SUBJECTS if subjects is None else subjects)
    shape, seed, out_dir = _check_shape(shape), _check_seed(seed), Path(out_dir)
    workers = _check_workers(workers)
    params = {"phantom_version": PHANTOM_VERSION, "subjects": subjects, "shape": list(shape), "seed": seed}
    records = iwoai_records(subjects, phantom_spacing_mm(shape))
    manifest = out_dir / MANIFEST_FILE
    if _stored_params(out_dir / PARAMS_FILE) == params and _complete(out_dir, records):
        return manifest
    out_dir.mkdir(parents=True, exist_ok=True)
    keep = _prepare(out_dir, params)
    todo = [r for r in records
            if not (keep and (out_dir / r.image).is_file() and (out_dir / r.seg).is_file())]
    jobs = [(str(out_dir), r, shape, seed) for r in todo]
    if len(jobs) * math.prod(shape) < _POOL_MIN_VOXELS:
        workers = 1  # starting processes would cost more than it saves
    for _ in _progress(_run_jobs(jobs, workers), len(jobs), progress):
        pass
    done = [dataclasses.replace(r, sha256_image=file_sha256(out_dir / r.image),
                                sha256_seg=file_sha256(out_dir / r.seg)) for r in records]
    write_manifest(done, manifest)
    return manifest


def _check_workers(workers) -> int:
    if workers is None:
        return max(1, min(8, os.cpu_count() or 1))  # ~0.8 GB each at 384 x 384 x 160
    if not isinstance(workers, (int, np.integer)) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers={workers!r} must be an int >= 1 or None")
    return int(workers)


def _write_scan(job: tuple[str, ScanRecord, tuple[int, int, int], int]) -> str:
    """Render one scan and write its .im and .seg files; job = (out_dir, record, shape, seed)."""
    out_dir, r, shape, seed = job
    image, seg = make_scan(shape, seed, r.split, int(r.subject[-3:]), TIMEPOINTS.index(r.timepoint))
    _write_h5(Path(out_dir) / r.image, image)
    _write_h5(Path(out_dir) / r.seg, seg)
    return r.scan_id


def _run_jobs(jobs: list, workers: int, write: Callable[[tuple], str] | None = None) -> Iterator[str]:
    """Yield each job's scan id as it is written by ``write`` (default: the IWOAI layout's writer; the other
    layouts' writers pass their own, a module-level function), in this process or in ``workers`` processes."""
    write = _write_scan if write is None else write
    if workers <= 1 or len(jobs) <= 1:
        yield from map(write, jobs)
        return
    # Each scan's random stream depends only on its own ids, so the order of work is free.
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        yield from pool.map(write, jobs)


def _progress(items: Iterator, total: int, enabled: bool) -> Iterator:
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, total=total, desc="phantoms", unit="scan")
