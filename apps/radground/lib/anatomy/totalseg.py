"""TotalSegmentator as an optional backend of the ``anatomy`` task (``--conf anatomy_backend totalsegmentator``).

TotalSegmentator's 'total' task segments 117 classes (v2; 104 in v1) in real CT; this module maps
them onto the project's structure vocabulary (:data:`lib.anatomy.labels.ANATOMY_STRUCTURES`), so
the grounding models read a TotalSegmentator label map exactly like the anatomy network's.

The mapping (:data:`TOTALSEG_TO_STRUCTURE`, class name -> structure key):

========================  ==================================================================  =====
structure                 TotalSegmentator v2 'total' classes                                  count
========================  ==================================================================  =====
liver, spleen, pancreas,  the class of the same name                                               6
gallbladder, stomach,
aorta
kidney_right/_left        kidney_right/_left, kidney_cyst_right/_left (cysts are carved out          4
                          of the kidney in v2; the organ mask keeps them, as ours does)
lung_right                lung_upper_lobe_right, lung_middle_lobe_right, lung_lower_lobe_right       3
lung_left                 lung_upper_lobe_left, lung_lower_lobe_left                                 2
trachea_bronchi           trachea                                                                    1
esophagus                 esophagus                                                                  1
thyroid                   thyroid_gland                                                              1
heart                     heart, atrial_appendage_left                                               2
mediastinum               superior_vena_cava, pulmonary_vein, brachiocephalic_trunk,                 9
                          brachiocephalic_vein_left/_right, subclavian_artery_left/_right,
                          common_carotid_artery_left/_right
vertebra                  vertebrae_C1..C7, T1..T12, L1..L5, S1, sacrum                             26
rib_cage                  rib_left_1..12, rib_right_1..12, sternum, costal_cartilages,              28
                          clavicula_left/_right
========================  ==================================================================  =====

83 of the 117 v2 classes map; the other 34 have no counterpart and are dropped (label 0):
adrenal glands, small bowel, duodenum, colon, urinary bladder, prostate, inferior vena cava,
portal/splenic vein, iliac arteries and veins, humeri, scapulae, femurs, hips, spinal cord,
gluteal, autochthonous and iliopsoas muscles, brain, skull (:data:`TOTALSEG_DROPPED`).
TotalSegmentator v1's heart chambers (heart_myocardium, heart_atrium_*, heart_ventricle_*) map
to ``heart`` and its pulmonary_artery to ``mediastinum``, so a v1 install maps too.

Coverage caveats:

- **pleura and breast**: TotalSegmentator has no pleura and no breast class. Those structures,
  and so the Reg2RG regions ``pleura`` and ``breast``, are *absent* from its output: they are
  left out of the structure dict :meth:`TotalSegmentatorPrior.segment` returns (and reported as
  ``absent_structures``), never returned as empty masks that would read as "segmented, nothing
  there".
- **mediastinum** is only its great vessels: TotalSegmentator has no mediastinal fat or node
  class. The subclavian and common carotid arteries are taken whole, including their cervical
  and axillary segments beyond the thoracic inlet.

Nothing here downloads: :func:`totalseg_available` checks that the package imports and that the
weights the requested mode needs are already on disk; TotalSegmentator itself would fetch
missing weights from the internet at its first run.
"""
from __future__ import annotations

import glob
import importlib
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from lib.anatomy.labels import ANATOMY_STRUCTURES, CHEST_REGIONS, ORGAN_DISPLAY

logger = logging.getLogger(__name__)

#: Backends of the anatomy task (``--conf anatomy_backend``).
BACKENDS = ("network", "totalsegmentator")

#: TotalSegmentator v2 'total' task, id -> class name (``totalsegmentator.map_to_binary.class_map["total"]``).
#: At run time the installed package's own table is used; this copy documents the mapping and tests it.
TOTALSEG_TOTAL_V2: dict[int, str] = dict(enumerate(
    ["spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "pancreas",
     "adrenal_gland_right", "adrenal_gland_left",
     "lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right", "lung_middle_lobe_right",
     "lung_lower_lobe_right",
     "esophagus", "trachea", "thyroid_gland", "small_bowel", "duodenum", "colon", "urinary_bladder", "prostate",
     "kidney_cyst_left", "kidney_cyst_right", "sacrum", "vertebrae_S1"]
    + [f"vertebrae_L{i}" for i in range(5, 0, -1)]
    + [f"vertebrae_T{i}" for i in range(12, 0, -1)]
    + [f"vertebrae_C{i}" for i in range(7, 0, -1)]
    + ["heart", "aorta", "pulmonary_vein", "brachiocephalic_trunk", "subclavian_artery_right", "subclavian_artery_left",
       "common_carotid_artery_right", "common_carotid_artery_left", "brachiocephalic_vein_left",
       "brachiocephalic_vein_right", "atrial_appendage_left", "superior_vena_cava", "inferior_vena_cava",
       "portal_vein_and_splenic_vein", "iliac_artery_left", "iliac_artery_right", "iliac_vena_left",
       "iliac_vena_right", "humerus_left", "humerus_right", "scapula_left", "scapula_right", "clavicula_left",
       "clavicula_right", "femur_left", "femur_right", "hip_left", "hip_right", "spinal_cord",
       "gluteus_maximus_left", "gluteus_maximus_right", "gluteus_medius_left", "gluteus_medius_right",
       "gluteus_minimus_left", "gluteus_minimus_right", "autochthon_left", "autochthon_right",
       "iliopsoas_left", "iliopsoas_right", "brain", "skull"]
    + [f"rib_left_{i}" for i in range(1, 13)]
    + [f"rib_right_{i}" for i in range(1, 13)]
    + ["sternum", "costal_cartilages"],
    start=1,
))

#: TotalSegmentator class name -> structure key of ANATOMY_STRUCTURES (v2 names, plus v1's heart parts).
TOTALSEG_TO_STRUCTURE: dict[str, str] = {
    # abdomen
    "liver": "liver",
    "spleen": "spleen",
    "kidney_right": "kidney_right",
    "kidney_left": "kidney_left",
    "kidney_cyst_right": "kidney_right",
    "kidney_cyst_left": "kidney_left",
    "pancreas": "pancreas",
    "gallbladder": "gallbladder",
    "stomach": "stomach",
    "aorta": "aorta",
    # lungs, airway, neck
    "lung_upper_lobe_right": "lung_right",
    "lung_middle_lobe_right": "lung_right",
    "lung_lower_lobe_right": "lung_right",
    "lung_upper_lobe_left": "lung_left",
    "lung_lower_lobe_left": "lung_left",
    "trachea": "trachea_bronchi",
    "esophagus": "esophagus",
    "thyroid_gland": "thyroid",
    # heart (v2: one class + the left atrial appendage; v1: chambers and myocardium)
    "heart": "heart",
    "atrial_appendage_left": "heart",
    "heart_myocardium": "heart",
    "heart_atrium_left": "heart",
    "heart_atrium_right": "heart",
    "heart_ventricle_left": "heart",
    "heart_ventricle_right": "heart",
    # great vessels other than the aorta
    "superior_vena_cava": "mediastinum",
    "pulmonary_vein": "mediastinum",
    "pulmonary_artery": "mediastinum",  # v1 only
    "brachiocephalic_trunk": "mediastinum",
    "brachiocephalic_vein_left": "mediastinum",
    "brachiocephalic_vein_right": "mediastinum",
    "subclavian_artery_left": "mediastinum",
    "subclavian_artery_right": "mediastinum",
    "common_carotid_artery_left": "mediastinum",
    "common_carotid_artery_right": "mediastinum",
    # bones
    "sacrum": "vertebra",
    "vertebrae_S1": "vertebra",
    **{f"vertebrae_L{i}": "vertebra" for i in range(1, 6)},
    **{f"vertebrae_T{i}": "vertebra" for i in range(1, 13)},
    **{f"vertebrae_C{i}": "vertebra" for i in range(1, 8)},
    **{f"rib_{side}_{i}": "rib_cage" for side in ("left", "right") for i in range(1, 13)},
    "sternum": "rib_cage",
    "costal_cartilages": "rib_cage",
    "clavicula_left": "rib_cage",
    "clavicula_right": "rib_cage",
}

#: v2 'total' classes with no counterpart here (mapped to 0).
TOTALSEG_DROPPED: tuple[str, ...] = tuple(n for n in TOTALSEG_TOTAL_V2.values() if n not in TOTALSEG_TO_STRUCTURE)

#: Structures TotalSegmentator has no class for: absent from its output, not empty.
TOTALSEG_ABSENT_STRUCTURES: tuple[str, ...] = tuple(s for s in ANATOMY_STRUCTURES if s not in set(TOTALSEG_TO_STRUCTURE.values()))

#: Structure key -> id of the structures a TotalSegmentator label map can hold.
TOTALSEG_STRUCTURES: dict[str, int] = {s: i for s, i in ANATOMY_STRUCTURES.items() if s not in TOTALSEG_ABSENT_STRUCTURES}

#: Reg2RG regions TotalSegmentator cannot give (every member structure absent): ``pleura``, ``breast``.
TOTALSEG_ABSENT_REGIONS: tuple[str, ...] = tuple(
    r for r, members in CHEST_REGIONS.items() if all(m in TOTALSEG_ABSENT_STRUCTURES for m in members)
)

#: nnU-Net weight folders of the 'total' task, by mode (v2 layout; v1 kept them under nnUNet/3d_fullres).
_WEIGHT_FOLDERS = {
    True: (("Dataset297_*",), ("nnUNet/3d_fullres/Task256_*",)),  # fast: 3 mm model
    False: (tuple(f"Dataset29{i}_*" for i in range(1, 6)), tuple(f"nnUNet/3d_fullres/Task25{i}_*" for i in range(1, 6))),
}


def totalseg_label_names() -> dict[str, int]:
    """Segment names (name -> id) of a mapped TotalSegmentator label map, as MONAI Label's ``labels``."""
    return {ORGAN_DISPLAY[k]: v for k, v in TOTALSEG_STRUCTURES.items()}


def structure_lut(ts_class_ids: Mapping[int, str], size: Optional[int] = None) -> np.ndarray:
    """Look-up table TotalSegmentator id -> ANATOMY_STRUCTURES id (0 for dropped or unknown classes)."""
    size = max(int(size or 0), max(ts_class_ids, default=0) + 1)
    lut = np.zeros(size, dtype=np.uint8)
    for tid, name in ts_class_ids.items():
        structure = TOTALSEG_TO_STRUCTURE.get(name)
        if structure is not None and int(tid) > 0:
            lut[int(tid)] = ANATOMY_STRUCTURES[structure]
    return lut


def map_label_map(ts_label_map, ts_class_ids: Mapping[int, str]) -> np.ndarray:
    """A TotalSegmentator multilabel map (ids of ``ts_class_ids``: id -> class name) as a structure map.

    Pure: no TotalSegmentator needed. Ids absent from ``ts_class_ids`` and dropped classes become 0.
    """
    lab = np.asarray(ts_label_map)
    if lab.size and (not np.issubdtype(lab.dtype, np.integer)):
        lab = np.rint(lab)
    lab = lab.astype(np.int64, copy=False)
    if lab.size and lab.min() < 0:
        raise ValueError("a TotalSegmentator label map holds no negative ids")
    lut = structure_lut(ts_class_ids, int(lab.max(initial=0)) + 1)
    return lut[lab]


# --------------------------------------------------------------------------- availability
def weights_root(weights_dir: Optional[str] = None) -> Path:
    """Where TotalSegmentator keeps its weights, resolved as TotalSegmentator does (``config.get_weights_dir``)."""
    if weights_dir:
        return Path(weights_dir).expanduser()
    if os.environ.get("TOTALSEG_WEIGHTS_PATH"):
        return Path(os.environ["TOTALSEG_WEIGHTS_PATH"])
    if os.environ.get("TOTALSEG_HOME_DIR"):
        return Path(os.environ["TOTALSEG_HOME_DIR"]) / "nnunet" / "results"
    home = Path("/tmp") if str(Path.home()) == "/" else Path.home()
    return home / ".totalsegmentator" / "nnunet" / "results"


def _missing_weights(root: Path, fast: bool) -> list[str]:
    """Weight folders the mode needs that are not under ``root`` (v2 layout, or else v1's)."""
    missing_by_layout = []
    for patterns in _WEIGHT_FOLDERS[bool(fast)]:
        missing = [p for p in patterns if not any(os.path.isdir(d) for d in glob.glob(str(root / p)))]
        if not missing:
            return []
        missing_by_layout.append(missing)
    return missing_by_layout[0]


def totalseg_version() -> str:
    try:
        from importlib.metadata import version

        return version("TotalSegmentator")
    except Exception:
        return "unknown"


def totalseg_available(weights_dir: Optional[str] = None, fast: bool = True) -> tuple[bool, str]:
    """(ok, reason): the ``totalsegmentator`` package imports and the weights of the mode are on disk.

    Never downloads: a missing weight folder is a reason, not a fetch.
    """
    try:
        importlib.import_module("totalsegmentator.python_api")
    except Exception as e:  # not installed, or a broken install (e.g. nnunetv2 missing)
        return False, f"the 'totalsegmentator' package is not importable ({type(e).__name__}: {e})"
    root = weights_root(weights_dir)
    if not root.is_dir():
        return False, f"no TotalSegmentator weights directory at {root}"
    if not any(root.iterdir()):
        return False, f"the TotalSegmentator weights directory {root} is empty"
    missing = _missing_weights(root, fast)
    if missing:
        mode = "fast" if fast else "full-resolution"
        return False, f"the {mode} 'total' weights are not in {root} (missing {', '.join(missing)})"
    return True, f"TotalSegmentator {totalseg_version()} ({'fast' if fast else 'full'}), weights in {root}"


def resolve_backend(requested: Optional[str], weights_dir: Optional[str] = None, fast: bool = True) -> str:
    """The backend to run: ``requested`` if it can run here, else the network (with one warning line)."""
    requested = (requested or "network").strip().lower()
    if requested not in BACKENDS:
        raise ValueError(f"anatomy: unknown anatomy_backend {requested!r}; choose one of {list(BACKENDS)}")
    if requested == "totalsegmentator":
        ok, reason = totalseg_available(weights_dir, fast=fast)
        if not ok:
            logger.warning(f"TotalSegmentator requested but unavailable: {reason}; using the anatomy network")
            return "network"
    return requested


# --------------------------------------------------------------------------- the prior
def read_ct(image_path: str) -> tuple[np.ndarray, np.ndarray]:
    """(HU array, affine) exactly as the network path loads them (:func:`lib.transforms.ct.load_ct`),
    so a mapped label map lands on the same grid the network's would."""
    from monai.transforms import LoadImage

    from lib.data.validation import check_ct_intensities
    from lib.errors import InvalidImageError

    try:
        img = LoadImage(image_only=True)(image_path)
    except Exception as e:
        raise InvalidImageError(f"image could not be loaded ({type(e).__name__})") from e
    arr = np.asarray(img.numpy() if hasattr(img, "numpy") else img)
    if arr.ndim != 3:
        raise InvalidImageError(f"expected a 3D CT volume, got an array of shape {list(arr.shape)}")
    check_ct_intensities(arr)  # InvalidImageError (422), as the network path's CheckCTd
    return arr, np.asarray(img.affine, dtype=np.float64)


class TotalSegmentatorPrior:
    """Runs TotalSegmentator's 'total' task on one CT and returns the project's structure map.

    ``weights_dir`` overrides TotalSegmentator's own lookup ($TOTALSEG_WEIGHTS_PATH, then
    $TOTALSEG_HOME_DIR/nnunet/results, then ~/.totalsegmentator/nnunet/results) for the duration
    of a call. ``fast`` runs the 3 mm model (one network; CPU-friendly), else the 1.5 mm five-part model.
    """

    _lock = threading.Lock()  # TotalSegmentator configures nnU-Net through process-wide env variables

    def __init__(self, weights_dir: Optional[str] = None, fast: bool = True, device: str = "cpu"):
        self.weights_dir = weights_dir
        self.fast = bool(fast)
        self.device = device

    @property
    def version(self) -> str:
        """Identifies the results: package version and mode (part of the anatomy cache key)."""
        return f"totalsegmentator-{totalseg_version()}-{'fast' if self.fast else 'full'}"

    def available(self) -> tuple[bool, str]:
        return totalseg_available(self.weights_dir, fast=self.fast)

    def class_ids(self) -> dict[int, str]:
        """The installed package's id -> class name table of the 'total' task (v2 copy if it cannot be read)."""
        try:
            from totalsegmentator.map_to_binary import class_map

            return {int(k): str(v) for k, v in class_map["total"].items()}
        except Exception:
            return dict(TOTALSEG_TOTAL_V2)

    def _run(self, in_path: str, out_path: str) -> np.ndarray:
        from totalsegmentator.python_api import totalsegmentator

        with self._lock:
            saved = os.environ.get("TOTALSEG_WEIGHTS_PATH")
            if self.weights_dir:
                os.environ["TOTALSEG_WEIGHTS_PATH"] = str(weights_root(self.weights_dir))
            try:
                seg = totalsegmentator(in_path, out_path, ml=True, fast=self.fast, task="total", device=self.device, quiet=True)
            finally:
                if self.weights_dir:
                    if saved is None:
                        os.environ.pop("TOTALSEG_WEIGHTS_PATH", None)
                    else:
                        os.environ["TOTALSEG_WEIGHTS_PATH"] = saved
        if seg is None or not hasattr(seg, "dataobj"):
            import nibabel as nib

            seg = nib.load(out_path)
        return np.asarray(seg.dataobj)

    def segment(self, image_path: str, return_affine: bool = False):
        """(structure label map on the input image's grid, structure key -> id of what it can hold).

        Structures TotalSegmentator has no class for (pleura, breast) are not in the dict. With
        ``return_affine`` the image's affine comes third (what the label is written with).
        """
        import nibabel as nib

        ok, reason = self.available()
        if not ok:  # checked again per call: TotalSegmentator would download what is missing
            raise RuntimeError(f"TotalSegmentator unavailable: {reason}")
        volume, affine = read_ct(image_path)
        with tempfile.TemporaryDirectory(prefix="radground_totalseg_") as tmp:
            # The volume as loaded here (not the original file), so TotalSegmentator's output is in the
            # same voxel order and geometry as the network path's input grid, whatever the file format.
            in_path, out_path = os.path.join(tmp, "ct.nii.gz"), os.path.join(tmp, "total.nii.gz")
            nib.save(nib.Nifti1Image(volume.astype(np.float32), affine), in_path)
            ts_map = self._run(in_path, out_path)
        ts_map = np.squeeze(ts_map)
        if ts_map.shape != volume.shape:
            raise RuntimeError(f"TotalSegmentator label shape {ts_map.shape} does not match the input image {volume.shape}")
        label = map_label_map(ts_map, self.class_ids())
        structures = dict(TOTALSEG_STRUCTURES)
        return (label, structures, affine) if return_affine else (label, structures)


def prior_result_info() -> dict[str, Any]:
    """What a TotalSegmentator-backed anatomy result says about its coverage."""
    return {"absent_structures": list(TOTALSEG_ABSENT_STRUCTURES), "absent_regions": list(TOTALSEG_ABSENT_REGIONS)}
