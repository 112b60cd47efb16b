"""Digitally reconstructed radiographs of the synthetic chest CT: physics sanity, projected boxes
that bound the projected findings, geometry that maps boxes into MedGrounder's 2D input and back."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.anatomy.labels import ANATOMY_STRUCTURES
from lib.data.grounding_targets import anatomy_targets
from lib.data.synthetic.radiograph import drr, project_affine, project_boxes, radiograph_from_study
from lib.data.synthetic.study import generate_study
from lib.metrics.boxes import box_voxel_to_world, mask_to_box
from lib.networks.medgrounder import MedGrounder, MedGrounderConfig, boxes_to_corners
from lib.networks.medgrounder.preprocess import prepare_image
from lib.reports import parse_report


@pytest.fixture(scope="module")
def study():
    return generate_study(20001, "tiny", body="chest")


def test_drr_physics():
    hu = np.full((4, 10, 4), -1000.0)  # air
    assert np.allclose(drr(hu, (1, 1, 1)), 0.0)
    hu[1, :, 1] = 0.0  # a water rod along the beam: 10 mm of water
    img = drr(hu, (1.0, 1.0, 1.0))
    assert img.shape == (4, 4) and img[1, 1] == pytest.approx(1 - np.exp(-0.2), rel=1e-5)
    assert drr(hu, (1.0, 2.0, 1.0))[1, 1] > img[1, 1]  # longer path, more attenuation
    hu[2, :, 2] = 1000.0  # bone attenuates more than water
    assert drr(hu, (1, 1, 1))[2, 2] > drr(hu, (1, 1, 1))[1, 1]


def test_radiograph_of_a_study(study):
    r = radiograph_from_study(study)
    x, _, z = study.image.shape
    assert r.image.shape == (x, z) and 0 <= r.image.min() and r.image.max() < 1
    assert r.spacing == (study.spacing[0], study.spacing[2])
    lungs = np.isin(r.structures, [ANATOMY_STRUCTURES["lung_right"], ANATOMY_STRUCTURES["lung_left"]])
    heart = r.structures == ANATOMY_STRUCTURES["heart"]
    assert lungs.any() and heart.any() and r.image[heart].mean() > r.image[lungs].mean()  # lungs are dark
    # every finding's projected box bounds its projected mask
    for fid, box in r.finding_boxes.items():
        assert np.array_equal(box, mask_to_box((study.lesions == fid).any(axis=1)))


def test_projected_geometry_matches_the_ct(study):
    b3 = np.array([10.0, 3.0, 5.0, 20.0, 9.0, 12.0])
    b2 = project_boxes(b3)
    assert b2.tolist() == [[10.0, 5.0, 20.0, 12.0]]
    w3 = box_voxel_to_world(b3, study.affine)
    w2 = box_voxel_to_world(b2[0], project_affine(study.affine))
    assert np.allclose(w2, [w3[0], w3[2], w3[3], w3[5]])


def test_targets_project_to_the_radiograph_and_map_into_the_model_input(study):
    r = radiograph_from_study(study)
    targets = anatomy_targets(parse_report(study.report), study.organs)
    boxes2d = [project_boxes(t.boxes) for t in targets]
    assert sum(len(b) for b in boxes2d) == sum(t.n_boxes for t in targets) > 0
    x, grid = prepare_image(r.image[None], r.affine, 32, 6.0, windows=None)
    assert x.shape == (1, 32, 32) and float(x.min()) == 0.0 and float(x.max()) == pytest.approx(1.0)
    for b in boxes2d:
        if len(b):
            norm = grid.normalise(b, r.affine)
            back = grid.to_source(boxes_to_corners(torch.as_tensor(norm)).numpy(), r.affine)
            # exact, but for a box touching the image border: resampling keeps voxel centres, so the
            # outer half voxel is outside the model input and clipped (at most half a source voxel)
            assert np.allclose(back, b, atol=0.5)
    net = MedGrounder(MedGrounderConfig.tiny(spatial_dims=2, in_channels=1, image_size=32, text_encoder={"backend": "hash", "dim": 32}))
    out = net(x[None], [targets[0].text])
    assert out["pred_boxes"].shape[-1] == 4


def test_radiograph_of_a_ct_file_finds_the_beam_axis_from_the_affine(study):
    from lib.data.synthetic.radiograph import beam_axis, radiograph_of_ct

    assert beam_axis(study.affine) == 1  # the engine's arrays are LPS: y is antero-posterior
    img, aff, axis = radiograph_of_ct(study.image, study.affine)
    r = radiograph_from_study(study)
    assert axis == 1 and np.allclose(img, r.image) and np.allclose(aff, r.affine)
    # the same CT stored with its axes permuted (y first) gives the same radiograph
    perm = np.transpose(study.image, (1, 0, 2))
    A = study.affine[:, [1, 0, 2, 3]]
    img2, aff2, axis2 = radiograph_of_ct(perm, A)
    assert axis2 == 0 and np.allclose(img2, img)
