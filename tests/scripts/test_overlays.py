"""scripts/overlays.py: the PNG shows the contour where the lesion is, and each answer form is read right."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import overlays  # noqa: E402


def _png(path: str) -> np.ndarray:
    from matplotlib.image import imread

    return imread(path)[..., :3]


def _phantom():
    """A soft-tissue CT block with a round 'lesion' (radius 6 voxels) on slice 2."""
    ct = np.full((40, 32, 5), 40.0, np.float32)
    ct[::2, ::2] += 30.0  # texture, so a drawn contour is not the only structure
    xx, yy = np.meshgrid(np.arange(40), np.arange(32), indexing="ij")
    disc = (xx - 24) ** 2 + (yy - 12) ** 2 <= 36
    mask = np.zeros(ct.shape, bool)
    mask[:, :, 2] = disc
    ct[mask] = 90.0
    return ct, mask


def _pixel(meta, x: float, y: float) -> tuple[int, int]:
    """(row, col) in the PNG of voxel (x, y) of the slice, from the axes' pixel box."""
    x0, y0, x1, y1 = meta["axes_px"]
    nx, ny = meta["shape"]
    return int(round(y0 + (y + 0.5) / ny * (y1 - y0))), int(round(x0 + (x + 0.5) / nx * (x1 - x0)))


def test_overlay_differs_from_the_raw_slice_on_the_contour_and_nowhere_far_from_it(tmp_path):
    ct, mask = _phantom()
    raw = overlays.axial_overlay(str(tmp_path / "raw.png"), ct, 2, "caption", true_mask=mask, spacing=(1, 1, 1), draw=False)
    drawn = overlays.axial_overlay(str(tmp_path / "drawn.png"), ct, 2, "caption", true_mask=mask, pred_mask=np.roll(mask, 3, axis=0),
                                   spacing=(1, 1, 1))
    assert drawn["drawn"]["true_contour"] and drawn["drawn"]["pred_contour"]
    a, b = _png(raw["path"]), _png(drawn["path"])
    assert a.shape == b.shape and os.path.getsize(drawn["path"]) > 5000
    # on the true contour's left edge (x = 18, the disc's edge at y = 12: the predicted disc is shifted to +x) the PNG is green
    r, c = _pixel(drawn, 18 - 0.5, 12)
    patch = b[r - 3:r + 4, c - 3:c + 4]
    green = (patch[..., 1] > 0.6) & (patch[..., 0] < 0.4) & (patch[..., 2] < 0.4)
    assert green.any(), patch
    assert not np.array_equal(a[r - 3:r + 4, c - 3:c + 4], patch)
    # on the predicted contour's right edge (x = 30 + 3) it is red
    r, c = _pixel(drawn, 33 + 0.5, 12)
    patch = b[r - 3:r + 4, c - 3:c + 4]
    assert ((patch[..., 0] > 0.6) & (patch[..., 1] < 0.4)).any(), patch
    # far from both contours (the slice's corner) the overlay leaves the CT as it was
    r, c = _pixel(drawn, 2, 28)
    assert np.array_equal(a[r - 3:r + 4, c - 3:c + 4], b[r - 3:r + 4, c - 3:c + 4])


def test_a_box_is_drawn_only_on_the_slices_it_crosses(tmp_path):
    ct, mask = _phantom()
    box = [[18, 6, 1], [30, 18, 3]]
    on = overlays.axial_overlay(str(tmp_path / "on.png"), ct, 2, "c", pred_boxes=[box])
    off = overlays.axial_overlay(str(tmp_path / "off.png"), ct, 4, "c", pred_boxes=[box])
    assert on["drawn"]["pred_boxes"] == 1 and off["drawn"]["pred_boxes"] == 0


def _truth():
    return {
        "region": "abdomen",
        "sentences": [{"index": 0, "text": "FINDINGS:", "span": [0, 9]},
                      {"index": 1, "text": "A 12 mm lesion in the liver.", "span": [10, 38]},
                      {"index": 2, "text": "A 9 mm cyst in the left kidney.", "span": [39, 70]}],
        "lesions": [{"id": 1, "centroid_vox": [24.0, 12.0, 2.0], "sentence_index": 1},
                    {"id": 2, "centroid_vox": [8.0, 8.0, 1.2], "sentence_index": 2}],
    }


def test_each_answer_form_gives_the_sentences_own_prediction():
    label = np.zeros((40, 32, 5), np.int32)
    label[20:26, 10:14, 2] = 1
    label[6:9, 6:9, 1] = 2
    item = overlays.truth_items(_truth())[0]
    assert item["sentence"] == "A 12 mm lesion in the liver." and item["span"] == [10, 38]

    gleve = {"lesions": [{"span": [12, 30], "label": 1, "box_vox": [[20, 10, 2], [25, 13, 2]]},
                         {"span": [41, 60], "label": 2, "box_vox": [[6, 6, 1], [8, 8, 1]]}]}
    pred, boxes, _ = overlays.predicted_for(item, label, gleve)
    assert pred.sum() == 24 and (label[pred] == 1).all() and boxes == [[[20, 10, 2], [25, 13, 2]]]

    ungrounded = {"lesions": [{"span": [12, 30], "label": None, "reason": "organ absent", "box_vox": None}]}
    pred, boxes, note = overlays.predicted_for(item, label, ungrounded)
    assert not pred.any() and boxes == [] and "organ absent" in note

    medgrounder = {"sentences": [{"span": [10, 38], "boxes": [{"confidence": 0.7, "box_vox": [[1, 2, 3], [4, 5, 6]]}]},
                                 {"span": [39, 70], "boxes": []}]}
    pred, boxes, _ = overlays.predicted_for(item, label, medgrounder)
    assert pred is None and boxes == [[[1, 2, 3], [4, 5, 6]]]

    pred, boxes, _ = overlays.predicted_for(item, label, {"label_names": {"lesion": 1}})
    assert pred.sum() == (label > 0).sum() and boxes == []


def test_task_overlays_write_one_png_per_truth_item(tmp_path):
    ct, mask = _phantom()
    truth_mask = mask.astype(np.uint8)
    truth_mask[7:10, 7:10, 1] = 2
    label = np.zeros(ct.shape, np.int32)
    label[20:28, 9:15, 2] = 1
    gleve = {"lesions": [{"span": [10, 38], "label": 1, "box_vox": [[20, 9, 2], [27, 14, 2]]}]}
    written = overlays.task_overlays(str(tmp_path), "gleve", "synth_1", ct, (1, 1, 1), label, gleve, _truth(), truth_mask)
    assert [os.path.basename(w["path"]) for w in written] == ["synth_1_1.png", "synth_1_2.png"]
    assert all(os.path.isfile(w["path"]) for w in written)
    assert written[0]["drawn"] == {"true_contour": True, "pred_contour": True, "true_boxes": 1, "pred_boxes": 1}
    assert written[1]["drawn"]["true_contour"] and not written[1]["drawn"]["pred_contour"]  # the kidney sentence was not grounded


@pytest.mark.parametrize("region,window", [("abdomen", overlays.WINDOWS["abdomen"]), ("chest", overlays.WINDOWS["chest"])])
def test_window_follows_the_body_part(tmp_path, region, window, monkeypatch):
    seen = {}
    monkeypatch.setattr(overlays, "axial_overlay", lambda *a, **k: seen.setdefault("window", k["window"]) and {"path": ""})
    ct, mask = _phantom()
    overlays.task_overlays(str(tmp_path), "t", "s", ct, (1, 1, 1), np.zeros(ct.shape, int), {}, {**_truth(), "region": region}, mask.astype(int))
    assert seen["window"] == window
