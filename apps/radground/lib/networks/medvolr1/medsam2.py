"""MedSAM2 propagation (002's frozen propagator) through the ``sam2`` package, used only when present locally.

002 lifts the evidence anchor (key slice + 2D boxes) to 3D with a frozen MedSAM2: the CT's axial
slices are the frames of a video, each box prompts one object on the key frame, and SAM2's video
predictor propagates the objects forward and backward through the volume. This module does that
with the ``sam2`` package's own API (``build_sam2_video_predictor``, ``init_state``,
``add_new_points_or_box``, ``propagate_in_video``) and MedSAM2's inference conventions:

* frames: the CT windowed (soft tissue, :data:`.volume.WINDOW_HU`) to 0..255 grey levels, given
  to SAM2 as RGB frames that it resizes to the model's square input (MedSAM2: 512 px) and
  normalises with the ImageNet mean/std. The installed ``sam2`` (1.1.0) only reads a folder of
  JPEG frames or an MP4 in ``init_state``, so the frames are written to a temporary folder as
  JPEG at quality 100 (at most a few grey levels off) and loaded at once;
* model: SAM2.1 Hiera-tiny with ``image_size`` 512 and the memory attention's RoPE grid 32 x 32,
  as MedSAM2's ``sam2.1_hiera_t512`` config (here: the package's hiera-t config + overrides);
* prompts: one object per box, box ``[x1, y1, x2, y2]`` in frame pixels with inclusive upper
  corners (MedSAM2 builds boxes from the min/max pixel indices); masks are logits > 0; each
  direction starts from a reset state with the boxes re-added (as MedSAM2's CT script); each
  object keeps its largest 3D connected component (MedSAM2's post-processing), then the union.

``sam2`` is not installed in the project's environment (it needs torchvision, whose PyPI build
breaks the CPU torch here; see README). :func:`choose_propagator` picks MedSAM2 only when the
package imports and the checkpoint file exists; otherwise the project's own
:mod:`.propagator`, with the reason logged and returned (the infer task reports it). The real
package run is checked by ``scripts/check_medsam2.py`` in a side environment.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import numpy as np

from .volume import WINDOW_HU, SliceSequence, mask_to_sequence, mask_to_source


#: the ``sam2`` package's SAM2.1 Hiera-tiny config (MedSAM2's base model)
DEFAULT_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
#: MedSAM2's input size (its ``sam2.1_hiera_t512`` config)
MEDSAM2_IMAGE_SIZE = 512
FRAME_MODES = ("source", "sequence")
#: ``--conf`` keys
CONF_CHECKPOINT = "medvolr1_medsam2"
CONF_CONFIG = "medvolr1_medsam2_config"
CONF_IMAGE_SIZE = "medvolr1_medsam2_image_size"
CONF_FRAMES = "medvolr1_medsam2_frames"
CONF_DEVICE = "medvolr1_medsam2_device"

MEDSAM2 = "medsam2"
SLICE_PROPAGATOR = "slice_propagator"


@dataclass(frozen=True)
class MedSAM2Settings:
    """Where MedSAM2 is and how to run it. ``frames``: ``source`` = every axial slice of the input at
    its own resolution (as MedSAM2 runs on a CT), ``sequence`` = the policy's T x S x S slices."""

    checkpoint: str
    config: str = DEFAULT_CONFIG
    image_size: int = MEDSAM2_IMAGE_SIZE
    frames: str = "source"
    device: Optional[str] = None
    largest_component: bool = True

    def __post_init__(self):
        if self.frames not in FRAME_MODES:
            raise ValueError(f"MedSAM2 frames must be one of {FRAME_MODES}, got {self.frames!r}")
        if not isinstance(self.image_size, int) or self.image_size < 64 or self.image_size % 16:
            raise ValueError(f"MedSAM2 image_size must be a multiple of 16 and >= 64, got {self.image_size!r}")

    @classmethod
    def from_conf(cls, conf: Optional[Mapping[str, str]]) -> Optional["MedSAM2Settings"]:
        """From the app's ``--conf`` strings; None when no checkpoint is configured."""
        conf = conf or {}
        ckpt = conf.get(CONF_CHECKPOINT)
        if not ckpt:
            return None
        size = conf.get(CONF_IMAGE_SIZE, MEDSAM2_IMAGE_SIZE)
        try:
            size = int(size)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{CONF_IMAGE_SIZE} must be an integer, got {size!r}") from e
        return cls(checkpoint=ckpt, config=conf.get(CONF_CONFIG) or DEFAULT_CONFIG, image_size=size, frames=conf.get(CONF_FRAMES) or "source", device=conf.get(CONF_DEVICE) or None)

    def hydra_overrides(self) -> list[str]:
        """MedSAM2's t512 model from the package's hiera-t config: input size and RoPE grid (stride 16)."""
        g = self.image_size // 16
        att = "++model.memory_attention.layer"
        return [f"++model.image_size={self.image_size}", f"{att}.self_attention.feat_sizes=[{g},{g}]", f"{att}.cross_attention.feat_sizes=[{g},{g}]"]


def sam2_import_error() -> Optional[str]:
    """None when ``sam2``'s video predictor imports; else why not (a torchvision mismatch shows here)."""
    try:
        from sam2.build_sam import build_sam2_video_predictor  # noqa: F401
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] == "sam2":
            return "the sam2 package is not installed"
        return f"sam2 does not import ({type(e).__name__}: {e})"
    except Exception as e:  # e.g. torchvision built for another torch
        return f"sam2 does not import ({type(e).__name__}: {e})"
    return None


def medsam2_status(checkpoint: Optional[str]) -> tuple[bool, str]:
    """(usable, reason)."""
    if not checkpoint:
        return False, f"no MedSAM2 checkpoint configured (--conf {CONF_CHECKPOINT} PATH)"
    if not os.path.isfile(checkpoint):
        return False, f"no MedSAM2 checkpoint at {checkpoint!r}"
    why = sam2_import_error()
    if why:
        return False, why
    return True, f"sam2 imports and the MedSAM2 checkpoint {checkpoint!r} exists"


@dataclass(frozen=True)
class PropagatorChoice:
    """Which propagator lifts the anchor, and why (reported with every answer)."""

    name: str  # MEDSAM2 | SLICE_PROPAGATOR
    reason: str
    settings: Optional[MedSAM2Settings] = None

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "reason": self.reason}


def choose_propagator(conf: Optional[Mapping[str, str]]) -> PropagatorChoice:
    """MedSAM2 when configured, importable and its checkpoint exists; else the project's propagator."""
    settings = MedSAM2Settings.from_conf(conf)
    ok, why = medsam2_status(settings.checkpoint if settings else None)
    if ok:
        return PropagatorChoice(MEDSAM2, why, settings)
    return PropagatorChoice(SLICE_PROPAGATOR, f"{why}; using the project's slice propagator")


# --- frames and boxes (no sam2 needed) -------------------------------------------------------


def to_grey(unit: np.ndarray) -> np.ndarray:
    """[0, 1] -> uint8 0..255 (rounded)."""
    return np.round(np.clip(np.asarray(unit, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def ct_frames(volume_hu: np.ndarray, lo_hi=WINDOW_HU) -> np.ndarray:
    """(X, Y, Z) HU volume -> (Z, H=Y, W=X) uint8 frames: windowed, and each slice ``[x, y]``
    transposed so a frame's columns are x and rows y (the boxes' convention, see :mod:`.volume`)."""
    v = np.asarray(volume_hu, np.float32)
    if v.ndim != 3:
        raise ValueError(f"expected a 3D volume, got shape {v.shape}")
    lo, hi = lo_hi
    return np.ascontiguousarray(np.transpose(to_grey((v - lo) / (hi - lo)), (2, 1, 0)))


def sequence_frames(seq_image: np.ndarray) -> np.ndarray:
    """(T, S, S) [0, 1] sequence slices ``[x, y]`` -> (T, S, S) uint8 frames (rows y, columns x)."""
    return np.ascontiguousarray(np.transpose(to_grey(seq_image), (0, 2, 1)))


def frame_boxes(boxes: np.ndarray, size: int, width: int, height: int) -> np.ndarray:
    """Boxes of the S x S slice (pixels, upper edges exclusive) -> SAM2 boxes on a width x height
    frame, ``[x1, y1, x2, y2]`` with inclusive upper corners (the last covered pixel)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    sx, sy = width / size, height / size
    x1 = np.clip(b[:, 0] * sx, 0, width - 1)
    y1 = np.clip(b[:, 1] * sy, 0, height - 1)
    x2 = np.clip(b[:, 2] * sx - 1, x1, width - 1)
    y2 = np.clip(b[:, 3] * sy - 1, y1, height - 1)
    return np.stack([x1, y1, x2, y2], 1)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a 3D bool mask (MedSAM2's post-processing)."""
    from scipy import ndimage

    lab, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if n <= 1:
        return mask.astype(bool)
    sizes = np.bincount(lab.ravel())[1:]
    return lab == (int(np.argmax(sizes)) + 1)


def assemble(per_object: np.ndarray, keep_largest: bool) -> np.ndarray:
    """(N objects, F, H, W) frame masks -> (F, H, W) union, each object first reduced to its
    largest 3D component when asked."""
    if per_object.shape[0] == 0:
        return np.zeros(per_object.shape[1:], bool)
    objs = [largest_component(m) if keep_largest else m.astype(bool) for m in per_object]
    return np.logical_or.reduce(objs)


# --- the sam2 video predictor -----------------------------------------------------------------


def write_jpeg_frames(frames: np.ndarray, folder: str) -> None:
    """(F, H, W) uint8 -> ``<folder>/00000.jpg`` ... (the frame-folder layout ``init_state`` reads)."""
    from PIL import Image

    for i, f in enumerate(frames):
        Image.fromarray(f, mode="L").save(os.path.join(folder, f"{i:05d}.jpg"), quality=100, subsampling=0)


def init_video_state(predictor, frames: np.ndarray):
    """SAM2's inference state for in-memory frames: written to a temporary frame folder, which
    ``init_state`` loads whole (resize to ``image_size``, ImageNet normalisation), then removed."""
    with tempfile.TemporaryDirectory(prefix="medsam2_frames_") as folder:
        write_jpeg_frames(frames, folder)
        return predictor.init_state(video_path=folder)


def run_video_predictor(predictor, frames: np.ndarray, key: int, boxes: np.ndarray, keep_largest: bool = True, init_state: Callable = init_video_state) -> np.ndarray:
    """(F, H, W) uint8 frames + key frame + (N, 4) frame boxes -> (F, H, W) bool mask.

    One object per box on the key frame; forward pass, then a reset state with the same boxes and
    a reverse pass (MedSAM2's CT procedure); masks are logits > 0, gathered per object."""
    import torch

    frames = np.asarray(frames)
    n_frames, h, w = frames.shape
    if not 0 <= key < n_frames:
        raise ValueError(f"key frame {key} outside 0..{n_frames - 1}")
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    per_object = np.zeros((len(boxes), n_frames, h, w), bool)
    if len(boxes) == 0:
        return per_object.any(0)
    state = init_state(predictor, frames)
    for reverse in (False, True):
        predictor.reset_state(state)
        for i, box in enumerate(boxes):
            predictor.add_new_points_or_box(inference_state=state, frame_idx=key, obj_id=i + 1, box=box)
        for frame_idx, obj_ids, logits in predictor.propagate_in_video(state, start_frame_idx=key, reverse=reverse):
            m = (logits > 0.0).detach().to("cpu", torch.bool).numpy().reshape(len(obj_ids), h, w)
            for j, obj_id in enumerate(obj_ids):
                per_object[int(obj_id) - 1, int(frame_idx)] |= m[j]
    predictor.reset_state(state)
    return assemble(per_object, keep_largest)


def load_predictor(settings: MedSAM2Settings):
    """SAM2's video predictor with the MedSAM2 checkpoint (``{"model": state_dict}``, loaded strictly)."""
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    device = settings.device or ("cuda" if torch.cuda.is_available() else "cpu")
    return build_sam2_video_predictor(settings.config, settings.checkpoint, device=device, hydra_overrides_extra=settings.hydra_overrides())


class MedSAM2Propagator:
    """The anchor -> 3D mask lift with MedSAM2; the predictor is built on first use."""

    name = MEDSAM2

    def __init__(self, settings: MedSAM2Settings, predictor: Any = None, build: Callable[[MedSAM2Settings], Any] = load_predictor):
        self.settings = settings
        self._predictor = predictor
        self._build = build

    @property
    def predictor(self):
        if self._predictor is None:
            self._predictor = self._build(self.settings)
        return self._predictor

    def _run(self, frames: np.ndarray, key: int, boxes: np.ndarray) -> np.ndarray:
        import torch

        p = self.predictor
        device = getattr(p, "device", torch.device("cpu"))
        cuda = getattr(device, "type", str(device)) == "cuda"
        amp = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()  # as MedSAM2 on GPU
        with torch.inference_mode(), amp:
            return run_video_predictor(p, frames, key, boxes, self.settings.largest_component)

    def lift(self, seq: SliceSequence, volume_hu: Optional[np.ndarray], key: int, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sequence key slice + its S x S boxes -> (sequence mask (T, S, S), source mask (X, Y, Z))."""
        if self.settings.frames == "source":
            if volume_hu is None:
                raise ValueError("MedSAM2 on source frames needs the input volume")
            frames = ct_frames(volume_hu)
            n_z, h, w = frames.shape
            m = self._run(frames, int(seq.z_index[key]), frame_boxes(boxes, seq.size, w, h))
            source = np.ascontiguousarray(np.transpose(m, (2, 1, 0)))
            return mask_to_sequence(source, seq), source
        frames = sequence_frames(seq.image)
        m = self._run(frames, int(key), frame_boxes(boxes, seq.size, seq.size, seq.size))
        seq_mask = np.ascontiguousarray(np.transpose(m, (0, 2, 1)))
        return seq_mask, mask_to_source(seq_mask, seq)

    def lifter(self, volume_hu: Optional[np.ndarray]) -> Callable[[SliceSequence, int, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """``lift`` bound to one input volume, in the form :func:`.pipeline.ground` takes."""
        return lambda seq, key, boxes: self.lift(seq, volume_hu, key, boxes)
