"""The radiograph train task (``medgrounder_cxr``): CT studies become frontal DRRs, every stage's
target boxes are the CT's projected onto them, and a run publishes a 2D checkpoint."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from monailabel.datastore.local import LocalDatastore

from lib.data.grounding_targets import anatomy_targets, finding_targets
from lib.data.studies import generate_dataset, read_truth
from lib.data.synthetic.radiograph import project_boxes
from lib.data.synthetic.study import generate_study
from lib.networks.medgrounder import MedGrounder, MedGrounderConfig, boxes_to_corners
from lib.reports import parse_report
from lib.trainers.medgrounder_cxr import MedGrounderCXRTrain

HASH = {"backend": "hash", "dim": 32}
SIZE = 32
CPU = {"device": "cpu", "pretrained": False, "val_interval": 1, "weak_boxes_from": "labels", "max_sentences": 8}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def datastore(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("mg_cxr_train"))
    generate_dataset(root, [1, 2, 3], preset="tiny", body="chest")
    return root


def _trainer(tmp_path):
    torch.manual_seed(0)
    net = MedGrounder(MedGrounderConfig.tiny(spatial_dims=2, in_channels=1, text_encoder=HASH, image_size=SIZE))
    model_dir = os.path.join(str(tmp_path), "model")
    return MedGrounderCXRTrain(os.path.join(model_dir, "mgx"), net, SIZE, 6.0, os.path.join(model_dir, "medgrounder_cxr.pt"))


def _ds(root):
    return LocalDatastore(root, extensions=("*.nii.gz",), auto_reload=False)


@pytest.mark.parametrize("stage", [1, 2])
def test_targets_are_the_ct_targets_projected_onto_the_radiograph(datastore, tmp_path, stage):
    tr = _trainer(tmp_path)
    studies, _ = tr.load_studies(_ds(datastore), stage, {**tr.config(), **CPU})
    assert len(studies) == 3
    s = studies[0]
    assert s.image.shape == (1, SIZE, SIZE) and 0.0 <= float(s.image.min()) and float(s.image.max()) <= 1.0
    st = generate_study(1, "tiny", body="chest")
    parsed = parse_report(st.report)
    ct = anatomy_targets(parsed, st.organs) if stage == 1 else finding_targets(parsed, read_truth(datastore, s.image_id), st.lesions)
    for t3, boxes2d, norm in zip(ct, s.source_boxes, s.targets):
        assert np.array_equal(boxes2d, project_boxes(t3.boxes))  # the CT box seen from the front (y dropped)
        assert norm.shape == (len(t3.boxes), 4) and ((norm >= 0) & (norm <= 1)).all()
    groundable = [i for i, t in enumerate(s.targets) if len(t)]
    assert groundable
    i = groundable[0]  # normalised boxes map back onto the radiograph's pixels
    back = s.grid.to_source(boxes_to_corners(s.targets[i]).numpy(), _drr_affine(datastore, s.image_id))
    assert np.allclose(back, s.source_boxes[i], atol=1.0)


def _drr_affine(root, image_id):
    import nibabel as nib

    from lib.data.synthetic.radiograph import radiograph_of_ct

    ct = nib.load(os.path.join(root, f"{image_id}.nii.gz"))
    return radiograph_of_ct(np.asarray(ct.dataobj, np.float32), ct.affine)[1]


def test_a_run_publishes_a_2d_checkpoint(datastore, tmp_path):
    tr = _trainer(tmp_path)
    stats = tr({**CPU, "stage": 1, "max_epochs": 1}, _ds(datastore))
    ckpt = torch.load(tr.publish_path, map_location="cpu")
    assert ckpt["stage"] == 1 and ckpt["config"]["spatial_dims"] == 2 and ckpt["config"]["in_channels"] == 1
    assert stats["name"] == "medgrounder_cxr" and stats["n_train"] == 2 and stats["n_val"] == 1 and 0 < ckpt["threshold"] < 1
