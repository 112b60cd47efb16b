"""Overlay PNGs of a task's answer on the synthetic truth (issue 10): one axial CT slice through
each true lesion or finding, the true contour and box (green) and the predicted ones (red), the
report sentence as the caption.

What is predicted for a truth item is read from the task's answer JSON by its form
(``lib.schema.adapters.detect_format``), so any task answering in a known form gets overlays:

* ``lesion_grounding`` (gleve): the lesions whose sentence span overlaps the truth item's sentence;
  their labels in the label map are the predicted contour, their ``box_vox`` the predicted boxes;
* ``phrase_grounding`` (medgrounder): the boxes of the overlapping sentence (no mask: boxes only);
* ``segmentation`` (lesion_baseline): every labelled voxel (report-blind, so no sentence link).

Matplotlib with the Agg backend (no display). ``axial_overlay`` returns where the image axes lie in
the PNG so a test can check the drawing lands on the contour.
"""
from __future__ import annotations

import os
import textwrap
from typing import Any, Iterable, Optional, Sequence

import numpy as np

TRUE_COLOUR, PRED_COLOUR = "#00e000", "#ff2020"
#: CT display windows (level - width/2, level + width/2): soft tissue for the abdomen, a wide one for the chest.
WINDOWS = {"abdomen": (-160.0, 240.0), "chest": (-1000.0, 400.0)}


def _box_rect(box_vox, z: int):
    """(x0, y0, width, height) in pixel units of an inclusive [lo, hi] voxel box on slice ``z``; None off it."""
    lo, hi = np.asarray(box_vox[0]), np.asarray(box_vox[1])
    if len(lo) > 2 and not (lo[2] <= z <= hi[2]):
        return None
    return lo[0] - 0.5, lo[1] - 0.5, hi[0] - lo[0] + 1, hi[1] - lo[1] + 1


def axial_overlay(path: str, ct: np.ndarray, z: int, caption: str, true_mask: Optional[np.ndarray] = None,
                  pred_mask: Optional[np.ndarray] = None, true_boxes: Iterable = (), pred_boxes: Iterable = (),
                  spacing: Sequence[float] = (1.0, 1.0, 1.0), window: tuple[float, float] = WINDOWS["abdomen"],
                  title: str = "", draw: bool = True) -> dict[str, Any]:
    """Write one PNG: slice ``z`` of ``ct`` (x, y, z), contours of the masks' slice, the boxes that
    cross the slice, ``caption`` below. ``draw=False`` writes the bare slice (same layout).

    Returns ``{"path", "axes_px": [x0, y0, x1, y1]}`` (the image axes in PNG pixels, origin top
    left), ``"shape": [nx, ny]`` and what was drawn (``"drawn"``: contour/box counts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    sl = np.asarray(ct[:, :, z], dtype=np.float32)
    fig = plt.figure(figsize=(5.0, 6.0), dpi=100)
    ax = fig.add_axes((0.05, 0.22, 0.9, 0.7))
    # rows = y (anterior at the top), columns = x (the patient's right on the left), mm aspect
    ax.imshow(sl.T, cmap="gray", vmin=window[0], vmax=window[1], origin="upper", interpolation="nearest",
              aspect=float(spacing[1]) / float(spacing[0]))
    ax.set_axis_off()
    drawn = {"true_contour": False, "pred_contour": False, "true_boxes": 0, "pred_boxes": 0}
    if draw:
        for key, mask, colour in (("true_contour", true_mask, TRUE_COLOUR), ("pred_contour", pred_mask, PRED_COLOUR)):
            if mask is not None and np.asarray(mask)[:, :, z].any():
                ax.contour(np.asarray(mask)[:, :, z].T.astype(np.float32), levels=[0.5], colors=[colour], linewidths=1.5)
                drawn[key] = True
        for key, boxes, colour, style in (("true_boxes", true_boxes, TRUE_COLOUR, "--"), ("pred_boxes", pred_boxes, PRED_COLOUR, "-")):
            for b in boxes:
                rect = _box_rect(b, z)
                if rect is not None:
                    ax.add_patch(Rectangle(rect[:2], rect[2], rect[3], fill=False, edgecolor=colour, linestyle=style, linewidth=1.2))
                    drawn[key] += 1
        fig.text(0.05, 0.93, "green: truth   red: prediction", color="black", fontsize=8)
    fig.text(0.05, 0.965, title, fontsize=9, weight="bold")
    fig.text(0.05, 0.19, "\n".join(textwrap.wrap(caption, 70)[:6]), fontsize=8, va="top")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.canvas.draw()
    width, height = fig.canvas.get_width_height()
    bb = ax.get_window_extent()  # display pixels, origin bottom left
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return {"path": path, "axes_px": [bb.x0, height - bb.y1, bb.x1, height - bb.y0], "size_px": [width, height],
            "shape": list(sl.shape), "drawn": drawn}


# ---------------------------------------------------------------------------------- truth and answers
def truth_items(truth: dict) -> list[dict]:
    """Every true lesion (abdomen) or finding (chest) with its id, slice and sentence."""
    sentences = {s["index"]: s for s in truth.get("sentences", [])}
    items = []
    for item in list(truth.get("lesions") or []) + list(truth.get("findings") or []):
        sent = sentences.get(item.get("sentence_index"), {})
        items.append({"id": int(item["id"]), "centroid_vox": item["centroid_vox"], "sentence": sent.get("text", ""),
                      "span": sent.get("span") or item.get("span"), "box_vox": item.get("box_vox")})
    return items


def _overlaps(a, b) -> bool:
    return a is not None and b is not None and a[0] < b[1] and b[0] < a[1]


def predicted_for(item: dict, label: np.ndarray, result: dict) -> tuple[Optional[np.ndarray], list, str]:
    """(predicted mask or None, predicted boxes, a note) for one truth item, by the answer's form."""
    from lib.schema.adapters import detect_format

    form = detect_format(result)
    if form == "lesion_grounding":
        recs = [r for r in result["lesions"] if _overlaps(r.get("span"), item["span"])]
        labels = [r["label"] for r in recs if r.get("label")]
        note = "; ".join(f"label {r['label']}" if r.get("label") else f"not grounded: {r.get('reason')}" for r in recs) or "no lesion read from this sentence"
        return np.isin(label, labels), [r["box_vox"] for r in recs if r.get("box_vox")], note
    if form == "phrase_grounding":
        recs = [s for s in result["sentences"] if _overlaps(s.get("span"), item["span"])]
        boxes = [b for s in recs for b in s.get("boxes", [])]
        note = ", ".join(f"box {b['confidence']:.2f}" for b in boxes) or "no box above the threshold"
        return None, [b["box_vox"] for b in boxes], note
    return np.asarray(label) > 0, [], "every labelled voxel (report-blind)"


def bbox(mask: np.ndarray):
    idx = np.nonzero(mask)
    return None if not idx[0].size else [[int(a.min()) for a in idx], [int(a.max()) for a in idx]]


def task_overlays(out_dir: str, task: str, study_id: str, ct: np.ndarray, spacing, label: np.ndarray, result: dict,
                  truth: dict, truth_mask: np.ndarray) -> list[dict]:
    """One PNG per truth item of the study: ``<out_dir>/<task>/<study>_<item id>.png``."""
    window = WINDOWS["chest" if truth.get("region") == "chest" else "abdomen"]
    written = []
    for item in truth_items(truth):
        z = int(np.clip(round(item["centroid_vox"][2]), 0, ct.shape[2] - 1))
        true_mask = np.asarray(truth_mask) == item["id"]
        true_box = item["box_vox"] or bbox(true_mask)
        pred_mask, pred_boxes, note = predicted_for(item, label, result)
        written.append(axial_overlay(
            os.path.join(out_dir, task, f"{study_id}_{item['id']}.png"), ct, z,
            f"\"{item['sentence']}\"  ({task}: {note})", true_mask=true_mask, pred_mask=pred_mask,
            true_boxes=[true_box] if true_box else [], pred_boxes=pred_boxes, spacing=spacing, window=window,
            title=f"{task} - {study_id}, axial slice {z}"))
    return written
