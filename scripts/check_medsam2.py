"""Check MedVol-R1's MedSAM2 adapter (lib/networks/medvolr1/medsam2.py) against the real ``sam2``
package, in a side environment: the project's venv cannot hold ``sam2`` (it needs torchvision,
whose PyPI build breaks the project's CPU torch). MedSAM2's weights are not available offline, so
the check builds SAM2.1 Hiera-tiny at MedSAM2's 512 px from the package's own config with random
weights, saves it in the checkpoint format ``build_sam2`` loads (``{"model": state_dict}``), and
runs the adapter end to end on a synthetic abdominal study.

    python3 -m venv /tmp/sam2venv
    /tmp/sam2venv/bin/pip install torch==2.14.1 torchvision==0.29.1 sam2==1.1.0 numpy scipy monai pydantic
    /tmp/sam2venv/bin/python scripts/check_medsam2.py

It verifies the plumbing (selection, strict checkpoint load, frames, box coordinates as SAM2
receives them, forward and reverse propagation, shapes, mask assembly). With random weights the
masks mean nothing: their overlap with the box and the truth is printed, not checked. Exits 1 when
a check fails.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from importlib import metadata

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP_DIR = os.path.join(ROOT, "apps", "radground")
if APP_DIR not in sys.path:
    sys.path.insert(0, APP_DIR)

FAILED: list[str] = []


def check(name: str, ok: bool, detail: str = "") -> None:
    print(f"[{'PASS' if ok else 'FAIL'}] {name}{': ' + detail if detail else ''}", flush=True)
    if not ok:
        FAILED.append(name)


class Recorder:
    """Wraps the real predictor and records the frames each propagation pass yields."""

    def __init__(self, predictor):
        self.p = predictor
        self.passes: list[tuple[bool, list[int]]] = []
        self.boxes: list[tuple[int, int, np.ndarray]] = []

    def __getattr__(self, name):
        return getattr(self.p, name)

    def add_new_points_or_box(self, **kw):
        self.boxes.append((kw["frame_idx"], kw["obj_id"], np.asarray(kw["box"], float)))
        return self.p.add_new_points_or_box(**kw)

    def propagate_in_video(self, state, **kw):
        frames: list[int] = []
        self.passes.append((kw.get("reverse", False), frames))
        for out in self.p.propagate_in_video(state, **kw):
            frames.append(int(out[0]))
            yield out


class BoxAsMask(Recorder):
    """Sends each box prompt to the real predictor as the mask of its pixels (``add_new_mask``):
    SAM2 returns a conditioning mask as given, so the key-frame output shows where the adapter's
    box and frame conventions put the object, independent of the (random) weights."""

    def add_new_points_or_box(self, inference_state, frame_idx, obj_id, box):
        x1, y1, x2, y2 = [int(round(v)) for v in np.asarray(box, float)]
        m = np.zeros((inference_state["video_height"], inference_state["video_width"]), bool)
        m[y1 : y2 + 1, x1 : x2 + 1] = True  # inclusive corners; rows y, columns x
        self.boxes.append((frame_idx, obj_id, np.asarray(box, float)))
        return self.p.add_new_mask(inference_state=inference_state, frame_idx=frame_idx, obj_id=obj_id, mask=m)


def box_fraction(mask2d: np.ndarray, box) -> float:
    """Share of a [x, y] slice mask inside an exclusive-edge box."""
    if not mask2d.any():
        return float("nan")
    x1, y1, x2, y2 = [int(round(v)) for v in box]
    return float(mask2d[x1:x2, y1:y2].sum() / mask2d.sum())


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return float(2 * np.logical_and(a, b).sum() / s) if s else 1.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=3, help="synthetic study seed")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    versions = {k: metadata.version(k) for k in ("torch", "torchvision", "sam2")}
    print("environment:", versions, "cuda" if torch.cuda.is_available() else "cpu")
    import torchvision

    keep = torchvision.ops.nms(torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10]]), torch.tensor([0.9, 0.8]), 0.5)
    check("torchvision's compiled ops load beside this torch", keep.tolist() == [0])

    from sam2.build_sam import build_sam2

    from lib.data.synthetic import generate_study
    from lib.networks.medvolr1.medsam2 import (
        DEFAULT_CONFIG, MEDSAM2, SLICE_PROPAGATOR, MedSAM2Propagator, MedSAM2Settings, choose_propagator, ct_frames, frame_boxes,
        init_video_state, load_predictor, sam2_import_error, write_jpeg_frames,
    )
    from lib.networks.medvolr1.targets import component_boxes, topk_key_slice
    from lib.networks.medvolr1.volume import mask_to_sequence, to_sequence

    check("sam2's video predictor imports", sam2_import_error() is None, str(sam2_import_error() or ""))
    work = tempfile.mkdtemp(prefix="check_medsam2_")
    ckpt = os.path.join(work, "MedSAM2_random.pt")
    conf = {"medvolr1_medsam2": ckpt, "medvolr1_medsam2_device": "cpu"}

    c = choose_propagator(conf)
    check("no checkpoint file -> the slice propagator, with the reason", c.name == SLICE_PROPAGATOR and "no MedSAM2 checkpoint at" in c.reason, c.reason)

    # --- a MedSAM2-shaped checkpoint with random weights ------------------------------------
    settings = MedSAM2Settings.from_conf(conf)
    torch.manual_seed(0)
    t = time.time()
    model = build_sam2(DEFAULT_CONFIG, None, device="cpu", hydra_overrides_extra=settings.hydra_overrides())
    n_params = sum(p.numel() for p in model.parameters())
    torch.save({"model": model.state_dict()}, ckpt)
    print(f"built SAM2.1 hiera-t ({DEFAULT_CONFIG}, image_size {model.image_size}), {n_params / 1e6:.1f} M parameters, random init, saved in {time.time() - t:.1f} s")
    check("model built at MedSAM2's input size", model.image_size == 512)

    c = choose_propagator(conf)
    check("sam2 + checkpoint present -> MedSAM2 is chosen", c.name == MEDSAM2, c.reason)
    predictor = load_predictor(c.settings)
    same = all(torch.equal(v, predictor.state_dict()[k].cpu()) for k, v in model.state_dict().items())
    check("the adapter's predictor loads the checkpoint strictly (every tensor equal)", same and type(predictor).__name__ == "SAM2VideoPredictor", type(predictor).__name__)

    # --- a synthetic study, its liver and kidneys ------------------------------------------
    study = generate_study(args.seed, "tiny", body="abdomen")
    vol, organs, labels = study.image, study.organs, study.truth["organ_labels"]
    seq = to_sequence(vol, 16, 64)
    print(f"study seed {args.seed}: volume {vol.shape} HU, sequence {seq.image.shape}, z_index {seq.z_index.tolist()}")

    frames = ct_frames(vol)
    with tempfile.TemporaryDirectory() as d:
        write_jpeg_frames(frames, d)
        from PIL import Image

        back = np.stack([np.asarray(Image.open(os.path.join(d, f"{i:05d}.jpg"))) for i in range(len(frames))])
    err = int(np.abs(back.astype(int) - frames.astype(int)).max())
    check("CT frames: (Z, H=Y, W=X) uint8, JPEG round trip within 4 grey levels", frames.shape == (vol.shape[2], vol.shape[1], vol.shape[0]) and err <= 4, f"shape {frames.shape}, max error {err}")

    state = init_video_state(predictor, frames)
    check("init_state read the frames: (Z, 3, 512, 512), original size kept", tuple(state["images"].shape) == (len(frames), 3, 512, 512) and (state["video_height"], state["video_width"]) == frames.shape[1:], f"{tuple(state['images'].shape)}, H x W {state['video_height']} x {state['video_width']}")
    liver = organs == labels["liver"]
    liver_seq = mask_to_sequence(liver, seq)
    k = topk_key_slice(liver_seq, 1)
    boxes = component_boxes(liver_seq[k])
    fb = frame_boxes(boxes, seq.size, frames.shape[2], frames.shape[1])
    with torch.inference_mode():
        predictor.add_new_points_or_box(inference_state=state, frame_idx=int(seq.z_index[k]), obj_id=1, box=fb[0])
    pin = state["point_inputs_per_obj"][0][int(seq.z_index[k])]
    expect = fb[0].reshape(2, 2) / np.array([frames.shape[2], frames.shape[1]]) * 512
    got = pin["point_coords"][0].cpu().numpy()
    check("the box reaches SAM2 as corner points (labels 2, 3) at box / frame size * 512", np.allclose(got, expect, atol=1e-3) and pin["point_labels"][0].tolist() == [2, 3], f"sequence box {boxes[0].tolist()} -> frame box {np.round(fb[0], 2).tolist()} -> model {np.round(got, 2).tolist()}")
    predictor.reset_state(state)
    del state

    # --- end to end: source frames, one box (liver) -----------------------------------------
    rec = Recorder(predictor)
    prop = MedSAM2Propagator(c.settings, predictor=rec)
    t = time.time()
    seq_mask, source_mask = prop.lift(seq, vol, k, boxes)
    dt = time.time() - t
    z = int(seq.z_index[k])
    (r0, f0), (r1, f1) = rec.passes
    check("source frames: forward pass key..last, then reverse key..0", not r0 and r1 and f0 == list(range(z, vol.shape[2])) and f1 == list(range(z, -1, -1)), f"key slice {k + 1}/16 = z {z}; forward {f0[0]}..{f0[-1]}, reverse {f1[0]}..{f1[-1]}")
    check("the boxes are re-added for each pass on the key frame", [(f, o) for f, o, _ in rec.boxes] == [(z, 1), (z, 1)])
    check("mask shapes: sequence (16, 64, 64), source = volume", seq_mask.shape == (16, 64, 64) and source_mask.shape == vol.shape, f"{seq_mask.shape}, {source_mask.shape}")
    per_z = source_mask.reshape(-1, vol.shape[2]).sum(0)
    above, below = per_z[z + 1:].any(), per_z[:z].any() if z else True
    check("masks come back on the key slice and on propagated slices both ways", bool(per_z[z]) and above and below, f"voxels per z: {per_z.tolist()}")
    check("sequence mask = the source mask sampled on the sequence", np.array_equal(seq_mask, mask_to_sequence(source_mask, seq)))
    print(f"  {dt:.1f} s for {vol.shape[2]} frames on CPU; random weights: key-slice mask inside the box {box_fraction(source_mask[:, :, z], boxes[0] * np.array([vol.shape[0] / 64, vol.shape[1] / 64] * 2)):.2f}, DSC vs the liver {dice(source_mask, liver):.3f} (not checked)")

    # --- the box changes the key-frame output (it is read by the decoder) ----------------------
    outs = []
    for b in ([[4, 4, 20, 20]], [[36, 36, 60, 60]]):
        one = MedSAM2Propagator(MedSAM2Settings(ckpt, frames="sequence", largest_component=False, device="cpu"), predictor=predictor)
        outs.append(one.lift(seq, vol, k, np.array(b, float))[0][k])
    check("two different boxes give different key-slice masks", not np.array_equal(outs[0], outs[1]), f"{int(outs[0].sum())} vs {int(outs[1].sum())} pixels")

    # --- orientation and scale, through the real package: the box sent as its mask ----------
    # (SAM2 outputs a conditioning mask as given: use_mask_input_as_output_without_sam), on a
    # non-square crop so that a swapped x/y or a wrong scale would show.
    crop = vol[:, 8:56, :]
    cseq = to_sequence(crop, 16, 64)
    cbox = np.array([[10.0, 20.0, 43.0, 41.0]])  # sequence pixels (S = 64)
    rec = BoxAsMask(predictor)
    prop = MedSAM2Propagator(MedSAM2Settings(ckpt, largest_component=False, device="cpu"), predictor=rec)
    _, src = prop.lift(cseq, crop, 5, cbox)
    want = np.zeros(crop.shape[:2], bool)
    want[10:43, 15:31] = True  # x: 10..43 of 64 -> 10..43 of 64; y: 20..41 of 64 -> 15..30.75 of 48
    got = src[:, :, int(cseq.z_index[5])]
    iou = float(np.logical_and(got, want).sum() / np.logical_or(got, want).sum())
    check("round trip on a 64 x 48 crop: the key-slice mask lands on the box's voxels (IoU >= 0.9)", iou >= 0.9, f"IoU {iou:.3f}, mask {int(got.sum())} voxels, box {int(want.sum())}")

    # --- sequence frames, two boxes (kidneys) ------------------------------------------------
    kidneys = np.isin(organs, [labels["kidney_right"], labels["kidney_left"]])
    kid_seq = mask_to_sequence(kidneys, seq)
    kk = topk_key_slice(kid_seq, 1)
    kboxes = component_boxes(kid_seq[kk])
    rec = Recorder(predictor)
    prop = MedSAM2Propagator(MedSAM2Settings(ckpt, frames="sequence", device="cpu"), predictor=rec)
    t = time.time()
    seq_mask, source_mask = prop.lift(seq, None, kk, kboxes)
    dt = time.time() - t
    (r0, f0), (r1, f1) = rec.passes
    check("sequence frames, 2 boxes: one object per box, both passes", len(kboxes) == 2 and [o for _, o, _ in rec.boxes] == [1, 2, 1, 2] and f0 == list(range(kk, 16)) and f1 == list(range(kk, -1, -1)), f"key {kk + 1}/16, boxes {kboxes.tolist()}")
    check("sequence-frame masks: (16, 64, 64) and the volume's shape, non-empty on the key slice", seq_mask.shape == (16, 64, 64) and source_mask.shape == vol.shape and seq_mask[kk].any(), f"pixels per slice {seq_mask.reshape(16, -1).sum(1).tolist()}")
    print(f"  {dt:.1f} s for 16 frames; random weights: DSC vs the kidneys {dice(seq_mask, kid_seq):.3f} (not checked)")

    print(f"\n{'ALL CHECKS PASSED' if not FAILED else 'FAILED: ' + ', '.join(FAILED)}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
