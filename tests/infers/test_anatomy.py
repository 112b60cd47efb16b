"""The anatomy infer task in-process: named organs, a cache that hits and is invalidated."""
from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest
import torch

from lib.configs.anatomy import Anatomy
from lib.data.synthetic import generate_study


def _task(tmp_path, seed=0):
    cfg = Anatomy()
    cfg.init("anatomy", str(tmp_path), {}, None)
    cfg.path = [os.path.join(str(tmp_path), "anatomy.pt")]
    torch.manual_seed(seed)
    torch.save({"model": cfg.network.state_dict()}, cfg.path[0])
    return cfg, cfg.infer()["anatomy"]


def test_labels_are_named_and_the_second_call_hits_the_cache(tmp_path):
    study = generate_study(20003, "tiny")
    image = str(tmp_path / "img.nii.gz")
    nib.save(nib.Nifti1Image(study.image, study.affine), image)
    cfg, task = _task(tmp_path)
    f1, r1 = task({"image": image, "device": "cpu"})
    assert r1["cache"] == "miss" and r1["label_names"]["liver"] == 1 and r1["label_names"]["left kidney"] == 4
    f2, r2 = task({"image": image, "device": "cpu"})
    assert r2["cache"] == "hit"
    np.testing.assert_array_equal(np.asarray(nib.load(f1).dataobj), np.asarray(nib.load(f2).dataobj))
    assert nib.load(f2).shape == study.image.shape

    # New weights (a training published a checkpoint): the cache must miss.
    torch.manual_seed(1)
    for p in cfg.network.parameters():
        torch.nn.init.normal_(p)
    torch.save({"model": cfg.network.state_dict()}, cfg.path[0])
    _, r3 = task({"image": image, "device": "cpu"})
    assert r3["cache"] == "miss"


@pytest.mark.slow
def test_bundled_anatomy_model_segments_held_out_organs():
    """Loose floor on the script's figure (scripts/evaluate_anatomy.py prints the full table)."""
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "scripts"))
    from evaluate_anatomy import evaluate

    table = evaluate(n=2, preset="default")
    assert table["abdomen"]["mean"] >= 0.80, table
    assert table["abdomen"]["liver"] >= 0.85, table
    assert table["chest"]["mean"] >= 0.75, table
    assert table["chest"]["lung"] >= 0.85 and table["chest"]["heart"] >= 0.8, table
