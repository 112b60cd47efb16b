"""DICOM SEG from a label map: segment labels are the segment names, frames line up with the CT
instances whatever the label file's orientation, and gaps in label values are renumbered."""
from __future__ import annotations

import io

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest

from lib.schema import GroundingResult, ModelInfo, Segment, TaskType
from lib.writers.dicom_seg import MAX_LO, segment_names, write_seg
from tests.writers.dicom_fixtures import make_study


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(str(tmp_path_factory.mktemp("seg")))


def _roundtrip(ds) -> pydicom.Dataset:
    buf = io.BytesIO()
    ds.save_as(buf, write_like_original=False)
    buf.seek(0)
    return pydicom.dcmread(buf)


def _frames_by_instance(seg_ds, ct, numbers) -> np.ndarray:
    """(instances, rows, cols) label map of the SEG read back with highdicom, in the order of ``ct``."""
    seg = hd.seg.Segmentation.from_dataset(seg_ds)
    uids = [d.SOPInstanceUID for d in ct]
    present = {u[2] for u in seg.get_source_image_uids()}
    out = np.zeros((len(ct), ct[0].Rows, ct[0].Columns), np.int32)
    hit = [i for i, u in enumerate(uids) if u in present]
    if hit:
        pix = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=[uids[i] for i in hit], segment_numbers=numbers, combine_segments=True, relabel=False, ignore_spatial_locations=True
        )
        out[hit] = pix
    return out


def _expected(label: np.ndarray) -> np.ndarray:
    """Instance k of the exported LPS study is slice k; rows are j and columns i."""
    return np.transpose(label, (2, 1, 0))


def test_segment_labels_are_the_names_and_pixels_match_the_label(study):
    res = write_seg(study["grounding"], study["label_file"], study["ct"])
    ds = _roundtrip(res.dataset)
    names = {s.label: s.name for s in study["grounding"].segments}
    kept = sorted(names)
    assert study["dropped"] not in kept and res.segment_numbers == {v: i + 1 for i, v in enumerate(kept)}
    assert segment_names(ds) == {res.segment_numbers[v]: names[v] for v in kept}
    assert [str(s.SegmentLabel) for s in ds.SegmentSequence] == [names[v] for v in kept]
    assert ds.Modality == "SEG" and ds.ReferencedSeriesSequence[0].SeriesInstanceUID == study["dicom"].ct_series_uid
    frames = _frames_by_instance(ds, study["ct"], list(res.segment_numbers.values()))
    lut = np.zeros(int(study["label"].max()) + 1, np.int32)
    for v, n in res.segment_numbers.items():
        lut[v] = n
    assert np.array_equal(frames, lut[_expected(study["label"])])


def test_a_label_file_in_another_orientation_lands_on_the_same_frames(study, tmp_path):
    """The same label stored RAS (first two axes flipped) must give the same SEG frames."""
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    shape = np.asarray(study["label"].shape)
    shift = np.eye(4)
    shift[:2, 3] = shape[:2] - 1  # voxel i -> n-1-i on the flipped axes
    affine = study["label_affine"] @ shift @ flip
    path = str(tmp_path / "label_ras.nii.gz")
    nib.save(nib.Nifti1Image(study["label"][::-1, ::-1].copy(), affine), path)
    assert np.allclose(nib.load(path).affine @ [0, 0, 0, 1], study["label_affine"] @ [shape[0] - 1, shape[1] - 1, 0, 1])
    a = write_seg(study["grounding"], study["label_file"], study["ct"])
    b = write_seg(study["grounding"], path, study["ct"])
    fa = _frames_by_instance(_roundtrip(a.dataset), study["ct"], list(a.segment_numbers.values()))
    fb = _frames_by_instance(_roundtrip(b.dataset), study["ct"], list(b.segment_numbers.values()))
    assert fa.any() and np.array_equal(fa, fb)


def test_long_names_are_cut_for_the_label_and_kept_whole_in_the_description(study, tmp_path):
    long = "sentence 4 box 2 (0.87) — Small bilateral pleural effusions with adjacent compressive atelectasis."
    assert len(long) > MAX_LO
    g = GroundingResult(model=ModelInfo(name="medgrounder", version="v", task_type=TaskType.PHRASE_GROUNDING), segments=[Segment(label=1, name=long)])
    label = (study["label"] > 0).astype(np.uint8)
    path = str(tmp_path / "one.nii.gz")
    nib.save(nib.Nifti1Image(label, study["label_affine"]), path)
    ds = _roundtrip(write_seg(g, path, study["ct"]).dataset)
    assert len(ds.SegmentSequence[0].SegmentLabel) <= MAX_LO and segment_names(ds) == {1: long}


def test_nothing_to_store_or_an_unnamed_label_is_an_error(study, tmp_path):
    empty = str(tmp_path / "empty.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros_like(study["label"]), study["label_affine"]), empty)
    with pytest.raises(ValueError, match="nothing to store"):
        write_seg(study["grounding"], empty, study["ct"])
    unnamed = study["grounding"].model_copy(update={"segments": study["grounding"].segments[:1], "findings": []})
    with pytest.raises(ValueError, match="no segment name"):
        write_seg(unnamed, study["label_file"], study["ct"])


def test_each_segment_has_its_own_display_colour_and_the_content_label_says_who_made_it(study):
    """Viewers fall back to one default colour without RecommendedDisplayCIELabValue (OHIF warns)."""
    ds = _roundtrip(write_seg(study["grounding"], study["label_file"], study["ct"]).dataset)
    colours = [tuple(s.RecommendedDisplayCIELabValue) for s in ds.SegmentSequence]
    assert len(colours) == len(set(colours)) == len(ds.SegmentSequence) and all(0 <= v <= 65535 for c in colours for v in c)
    assert ds.ContentLabel == "GROUNDING"
    assert _roundtrip(write_seg(study["grounding"], study["label_file"], study["ct"], content_label="FINAL").dataset).ContentLabel == "FINAL"
