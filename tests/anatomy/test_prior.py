"""Organ masks, 000 eq. 2's smoothed maps and organ statistics, checked by hand."""
from __future__ import annotations

import numpy as np
import pytest

from lib.anatomy.labels import ANATOMY_STRUCTURES, REGION_IDS
from lib.anatomy.prior import organ_masks, organ_statistics, region_masks, soft_organ_maps

ORGANS = {"liver": 1, "spleen": 2}


def _map():
    lab = np.zeros((20, 20, 10), np.uint8)
    lab[2:8, 2:8, 2:8] = 1
    lab[12:16, 12:16, 3:6] = 2
    return lab


def test_masks_and_absent_organs():
    m = organ_masks(_map(), {**ORGANS, "pancreas": 5})
    assert m["liver"].sum() == 216 and m["spleen"].sum() == 48 and not m["pancreas"].any()


def test_soft_maps_are_smooth_in_millimetres():
    lab = _map()
    fine = soft_organ_maps(lab, ORGANS, spacing=(1, 1, 1), sigma_mm=2.0)
    coarse = soft_organ_maps(lab, ORGANS, spacing=(2, 2, 2), sigma_mm=2.0)
    assert fine.shape == (2, 20, 20, 10) and fine.dtype == np.float32
    assert 0.5 < fine[0, 5, 5, 5] < 1.0  # centre of a 6 mm liver cube smoothed with 2 mm: below 1
    assert 0.0 < fine[0, 9, 5, 5] < 0.5  # just outside: smoothed, not binary
    assert fine[1, 5, 5, 5] < 1e-3  # the spleen's map is ~0 in the liver
    assert coarse.shape == fine.shape


@pytest.mark.parametrize("spacing, edge", [(1.0, 10), (2.0, 5)])
def test_smoothing_width_is_physical(spacing, edge):
    """A half-space organ smoothed with sigma = 2 mm: at distance d mm outside its edge the map is
    Phi(-d / 2 mm), whatever the voxel size (first voxel outside: d = spacing / 2)."""
    from scipy.stats import norm

    lab = np.zeros((20, 24, 24), np.uint8)
    lab[:edge] = 1
    soft = soft_organ_maps(lab, {"liver": 1}, spacing=(spacing,) * 3, sigma_mm=2.0)
    assert soft[0, edge, 12, 12] == pytest.approx(norm.cdf(-(spacing / 2) / 2.0), abs=0.03)


def test_statistics_by_hand():
    lab = _map()
    img = np.where(lab == 1, 60.0, np.where(lab == 2, 100.0, -100.0))
    img[2, 2, 2] = 276.0  # one bright liver voxel: mean +1
    s = organ_statistics(img, lab, ORGANS, spacing=(1.5, 1.5, 2.5))
    assert s["liver"]["volume_ml"] == pytest.approx(216 * 1.5 * 1.5 * 2.5 / 1000)
    assert s["liver"]["mean_hu"] == pytest.approx(61.0)
    assert s["spleen"]["std_hu"] == pytest.approx(0.0)


def test_region_masks_merge_structures_by_region():
    lab = np.zeros((6, 6, 6), np.uint8)
    lab[0, 0, 0] = ANATOMY_STRUCTURES["lung_right"]
    lab[1, 0, 0] = ANATOMY_STRUCTURES["lung_left"]
    lab[2, 0, 0] = ANATOMY_STRUCTURES["aorta"]  # thoracic aorta belongs to the mediastinum region
    lab[3, 0, 0] = ANATOMY_STRUCTURES["rib_cage"]
    lab[4, 0, 0] = ANATOMY_STRUCTURES["vertebra"]
    m = region_masks(lab)
    assert set(m) == set(REGION_IDS)
    assert m["lung"].sum() == 2 and m["mediastinum"].sum() == 1 and m["bone"].sum() == 2
    assert not m["thyroid"].any() and not m["breast"].any()
