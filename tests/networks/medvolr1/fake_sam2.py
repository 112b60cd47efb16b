"""A stand-in for the part of ``sam2``'s video predictor API that the MedSAM2 adapter uses, for tests
in the project's environment (which cannot hold ``sam2``; the real package is checked by
scripts/check_medsam2.py in a side venv).

It behaves like SAM2 where the adapter depends on it: ``init_state`` reads a folder of
``<index>.jpg`` frames (and keeps their size), ``add_new_points_or_box`` takes one box per object
id, ``propagate_in_video`` yields ``(frame_idx, obj_ids, logits (N, 1, H, W))`` from the start frame
forward, or down to frame 0 with ``reverse=True``; ``reset_state`` drops prompts. Its "mask" for an
object is the box's pixels (inclusive corners, rows y, columns x) on the frames where the image
is bright, so tests can see where the adapter put things.
"""
from __future__ import annotations

import os
import sys
import types

import numpy as np
import torch


class FakeVideoPredictor:
    def __init__(self, device="cpu"):
        self.device = torch.device(device)
        self.calls: list[tuple] = []

    def init_state(self, video_path):
        from PIL import Image

        names = sorted((p for p in os.listdir(video_path) if p.endswith(".jpg")), key=lambda p: int(p[:-4]))
        frames = np.stack([np.asarray(Image.open(os.path.join(video_path, p))) for p in names])
        self.calls.append(("init_state", len(names)))
        return {"frames": frames, "video_height": frames.shape[1], "video_width": frames.shape[2], "boxes": {}}

    def reset_state(self, state):
        self.calls.append(("reset_state",))
        state["boxes"].clear()

    def add_new_points_or_box(self, inference_state, frame_idx, obj_id, box):
        self.calls.append(("add_box", int(frame_idx), int(obj_id), [float(v) for v in box]))
        inference_state["boxes"][obj_id] = (int(frame_idx), np.asarray(box, float))
        return frame_idx, list(inference_state["boxes"]), None

    def propagate_in_video(self, state, start_frame_idx=None, reverse=False):
        self.calls.append(("propagate", int(start_frame_idx), bool(reverse)))
        n, h, w = state["frames"].shape
        order = range(start_frame_idx, -1, -1) if reverse else range(start_frame_idx, n)
        ids = list(state["boxes"])
        for t in order:
            logits = torch.full((len(ids), 1, h, w), -5.0)
            bright = state["frames"][t].mean() > 100
            for j, oid in enumerate(ids):
                x1, y1, x2, y2 = [int(round(v)) for v in state["boxes"][oid][1]]
                if bright or t == start_frame_idx:
                    logits[j, 0, y1 : y2 + 1, x1 : x2 + 1] = 5.0
            yield t, ids, logits


def install_fake_sam2(monkeypatch, build=None) -> list:
    """Put a ``sam2`` package whose ``build_sam2_video_predictor`` returns a FakeVideoPredictor (or
    calls ``build``) into ``sys.modules``; returns the list of the builder's calls."""
    calls: list = []

    def build_sam2_video_predictor(config_file, ckpt_path=None, device="cuda", hydra_overrides_extra=(), **kw):
        calls.append({"config": config_file, "ckpt": ckpt_path, "device": device, "overrides": list(hydra_overrides_extra)})
        return build(config_file, ckpt_path) if build else FakeVideoPredictor(device)

    pkg = types.ModuleType("sam2")
    mod = types.ModuleType("sam2.build_sam")
    mod.build_sam2_video_predictor = build_sam2_video_predictor
    pkg.build_sam = mod
    monkeypatch.setitem(sys.modules, "sam2", pkg)
    monkeypatch.setitem(sys.modules, "sam2.build_sam", mod)
    return calls
