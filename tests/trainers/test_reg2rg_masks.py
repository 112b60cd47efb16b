"""Reg2RG training on the anatomy task's region maps (``region_masks: anatomy``) and their on-disk cache."""
from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import pytest
from monailabel.datastore.local import LocalDatastore

from lib.anatomy.labels import ANATOMY_STRUCTURES, REGION_IDS, region_map
from lib.data.region_reports import load_oriented
from lib.data.studies import generate_dataset, image_path, organ_path
from lib.trainers.reg2rg_masks import AnatomyRegionMasks

pytestmark = pytest.mark.usefixtures("one_thread")


class FakeAnatomy:
    """Stands in for the anatomy infer task: answers with the study's structure map restricted to
    ``keep`` (as a segmenter that finds only those structures), and counts its calls."""

    def __init__(self, studies: str, keep=("lung_right", "lung_left", "heart"), version: str = "network:abc"):
        self.studies, self.keep, self.version, self.calls = studies, keep, version, []

    def result_version(self) -> str:
        return self.version

    def __call__(self, request):
        import nibabel as nib

        self.calls.append(request)
        sid = os.path.basename(request["image"])[: -len(".nii.gz")]
        src = nib.load(organ_path(self.studies, sid))
        lab = np.asarray(src.dataobj)
        ids = [ANATOMY_STRUCTURES[k] for k in self.keep]
        fd, out = tempfile.mkstemp(suffix=".nii.gz")  # a temp file, as the real task answers (the caller deletes it)
        os.close(fd)
        nib.save(nib.Nifti1Image(np.where(np.isin(lab, ids), lab, 0).astype(np.uint8), src.affine), out)
        return out, {"backend": "fake", "model": {"version": self.version}}


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("reg2rg_masks") / "studies")
    generate_dataset(root, [0, 1], preset="tiny", body="chest")
    return root


def test_cache_computes_once_per_image_and_model_version(studies, tmp_path):
    fake = FakeAnatomy(studies)
    masks = AnatomyRegionMasks(fake, str(tmp_path / "cache"))
    img = image_path(studies, "chest_00000")
    first = masks.regions(img)
    assert len(fake.calls) == 1 and fake.calls[0]["no_cache"] and masks.has(img)
    again = AnatomyRegionMasks(fake, str(tmp_path / "cache")).regions(img)  # a new process: read from disk
    assert len(fake.calls) == 1 and np.array_equal(first, again)
    # the region map is the anatomy answer merged into regions, in the training orientation
    truth = region_map(load_oriented(organ_path(studies, "chest_00000")).astype(np.int64))
    assert first.shape == truth.shape
    assert set(np.unique(first)) == {0, REGION_IDS["lung"], REGION_IDS["heart"]}
    assert np.array_equal(first == REGION_IDS["lung"], truth == REGION_IDS["lung"])
    # a retrained anatomy model (new version) or a changed image misses the cache
    retrained = FakeAnatomy(studies, keep=("heart",), version="network:def")
    assert set(np.unique(AnatomyRegionMasks(retrained, str(tmp_path / "cache")).regions(img))) == {0, REGION_IDS["heart"]}
    assert len(retrained.calls) == 1
    copy = str(tmp_path / "chest_00000.nii.gz")
    shutil.copyfile(image_path(studies, "chest_00001"), copy)  # other content under a known name
    assert not masks.has(copy)
    # no temp file is left behind by a hit
    assert not [n for n in os.listdir(str(tmp_path / "cache")) if n.startswith(".")]


def test_a_half_written_entry_is_not_a_hit_and_fill_resumes(studies, tmp_path):
    fake = FakeAnatomy(studies)
    masks = AnatomyRegionMasks(fake, str(tmp_path / "cache"))
    imgs = [image_path(studies, s) for s in ("chest_00000", "chest_00001")]
    key = masks.key(imgs[0])
    shutil.copyfile(imgs[0], os.path.join(masks.cache.root, key + ".nii.gz"))  # label written, JSON not: an interrupted put
    assert not masks.has(imgs[0])
    assert masks.fill(imgs) == {"cached": 0, "computed": 2, "failed": 0, "left": 0}
    assert masks.fill(imgs) == {"cached": 2, "computed": 0, "failed": 0, "left": 0} and len(fake.calls) == 2
    assert masks.fill([str(tmp_path / "missing.nii.gz")])["failed"] == 1  # one bad study does not end a fill


def test_a_task_without_a_version_cannot_key_the_cache(studies, tmp_path):
    masks = AnatomyRegionMasks(lambda: (lambda request: None), str(tmp_path / "cache"))  # factory of a bare callable
    with pytest.raises(TypeError, match="result_version"):
        masks.key(image_path(studies, "chest_00000"))


def test_train_task_loads_studies_with_the_anatomy_maps(studies, tmp_path):
    from tests.trainers.test_reg2rg import _net
    from lib.trainers.reg2rg import Reg2RGTrain

    fake = FakeAnatomy(studies)
    made = []

    def factory():
        made.append(1)
        return fake

    trainer = Reg2RGTrain(model_dir=str(tmp_path / "m"), network=_net(), publish_path=str(tmp_path / "reg2rg.pt"), anatomy_task=factory)
    assert trainer._config["region_masks"] == "anatomy"
    ds = LocalDatastore(studies, extensions=("*.nii.gz",), auto_reload=False)
    entries, _ = trainer.datalist(ds, "anatomy")
    assert {e["label_kind"] for e in entries} == {"anatomy"} and not made  # nothing segmented until a study is loaded
    s = trainer.load_study(entries[0])
    assert s.inputs.names == ["heart", "lung"]  # only what the anatomy task found, not the true map's 10 regions
    truth_study = trainer.load_study(trainer.datalist(ds, "truth")[0][0])
    assert len(truth_study.inputs.names) >= 8
    stats = trainer({"max_epochs": 1, "val_split": 0.5, "device": "cpu"}, ds)
    assert stats["region_masks"] == "anatomy" and len(made) == 1 and len(fake.calls) == 2  # cached study not redone
    assert os.path.isdir(str(tmp_path / "m" / "anatomy_regions"))
    with pytest.raises(ValueError, match="region_masks"):
        trainer({"max_epochs": 1, "device": "cpu", "region_masks": "sat"}, ds)
    bare = Reg2RGTrain(model_dir=str(tmp_path / "m2"), network=_net(), publish_path=str(tmp_path / "r2.pt"))
    assert bare._config["region_masks"] == "truth"
    with pytest.raises(ValueError, match="anatomy task"):
        bare({"max_epochs": 1, "device": "cpu", "region_masks": "anatomy"}, ds)
