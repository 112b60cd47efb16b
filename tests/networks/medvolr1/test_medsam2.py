"""The MedSAM2 adapter's own logic, without ``sam2`` (not installable beside this torch): frames,
box scaling, mask assembly, the predictor call sequence (against a stand-in of sam2's API), and the
choice of propagator with its reason. The real package is checked by scripts/check_medsam2.py."""
import sys
import types

import numpy as np
import pytest

from lib.networks.medvolr1.medsam2 import (
    MEDSAM2, SLICE_PROPAGATOR, MedSAM2Propagator, MedSAM2Settings, assemble, choose_propagator, ct_frames, frame_boxes,
    largest_component, load_predictor, medsam2_status, run_video_predictor, sam2_import_error, sequence_frames,
)
from lib.networks.medvolr1.volume import mask_to_sequence, to_sequence
from tests.networks.medvolr1.fake_sam2 import FakeVideoPredictor, install_fake_sam2

pytestmark = pytest.mark.usefixtures("one_thread")


# --- frames and boxes ---------------------------------------------------------------------------


def test_ct_frames_window_and_put_x_on_columns():
    vol = np.full((6, 4, 3), -1000.0)
    vol[5, 1, 2] = 240.0  # x=5, y=1, z=2: top of the window
    vol[0, 3, 0] = 40.0  # middle of (-160, 240)
    f = ct_frames(vol)
    assert f.shape == (3, 4, 6) and f.dtype == np.uint8  # (Z, H=Y, W=X)
    assert f[2, 1, 5] == 255 and f[0, 3, 0] == 128 and f.sum() == 255 + 128


def test_ct_frames_refuse_a_2d_image():
    with pytest.raises(ValueError, match="3D"):
        ct_frames(np.zeros((4, 4)))


def test_sequence_frames_transpose_each_slice():
    img = np.zeros((2, 5, 5), np.float32)
    img[1, 4, 0] = 1.0  # x=4, y=0
    f = sequence_frames(img)
    assert f.shape == (2, 5, 5) and f[1, 0, 4] == 255 and f.sum() == 255


def test_frame_boxes_scale_per_axis_with_inclusive_upper_corners():
    b = frame_boxes(np.array([[8, 16, 40, 48]]), 64, width=128, height=32)
    assert np.allclose(b, [[16, 8, 79, 23]])  # x * 2, y / 2; last covered pixel = edge - 1


def test_frame_boxes_stay_inside_the_frame():
    b = frame_boxes(np.array([[0, 0, 64, 64], [63, 63, 64, 64]]), 64, width=64, height=64)
    assert np.allclose(b, [[0, 0, 63, 63], [63, 63, 63, 63]])


# --- mask assembly ------------------------------------------------------------------------------


def test_largest_component_keeps_the_biggest_3d_blob():
    m = np.zeros((5, 8, 8), bool)
    m[0:3, 0:3, 0:3] = True  # 27 voxels
    m[4, 6:8, 6:8] = True  # 4 voxels, separate
    out = largest_component(m)
    assert out.sum() == 27 and not out[4].any()


def test_assemble_is_the_union_of_each_objects_largest_component():
    per = np.zeros((2, 4, 6, 6), bool)
    per[0, 0:2, 0:2, 0:2] = True
    per[0, 3, 5, 5] = True  # a speck of object 1
    per[1, 1:4, 3:5, 3:5] = True
    out = assemble(per, keep_largest=True)
    assert out.shape == (4, 6, 6) and out.sum() == 8 + 12 and not out[3, 5, 5]
    assert assemble(per, keep_largest=False)[3, 5, 5]
    assert not assemble(np.zeros((0, 3, 4, 4), bool), True).any()


# --- the predictor call sequence ------------------------------------------------------------------


def bright_frames(n=7, h=10, w=12, lit=range(2, 6)):
    f = np.zeros((n, h, w), np.uint8)
    f[list(lit)] = 200
    return f


def test_run_follows_medsam2s_sequence_of_calls():
    p = FakeVideoPredictor()
    boxes = np.array([[1, 2, 4, 5], [6, 1, 9, 3]], np.float32)
    run_video_predictor(p, bright_frames(), 3, boxes)
    add = [("add_box", 3, 1, [1, 2, 4, 5]), ("add_box", 3, 2, [6, 1, 9, 3])]
    assert p.calls == [("init_state", 7), ("reset_state",), *add, ("propagate", 3, False), ("reset_state",), *add, ("propagate", 3, True), ("reset_state",)]


def test_run_gathers_both_directions_in_frame_orientation():
    out = run_video_predictor(FakeVideoPredictor(), bright_frames(), 3, np.array([[1, 2, 4, 5]]), keep_largest=False)
    assert out.shape == (7, 10, 12)
    assert [bool(out[t].any()) for t in range(7)] == [False, False, True, True, True, True, False]
    assert out[4, 2:6, 1:5].all() and out[4].sum() == 16  # rows y 2..5, columns x 1..4


def test_run_with_no_box_is_empty_and_a_bad_key_is_refused():
    p = FakeVideoPredictor()
    assert not run_video_predictor(p, bright_frames(), 3, np.zeros((0, 4))).any() and p.calls == []
    with pytest.raises(ValueError, match="key frame"):
        run_video_predictor(p, bright_frames(), 7, np.array([[1, 2, 4, 5]]))


# --- the propagator on a volume -------------------------------------------------------------------


@pytest.fixture
def volume():
    """(X=40, Y=24, Z=9) HU, soft tissue on z 2..6; other slices air."""
    v = np.full((40, 24, 9), -1000.0, np.float32)
    v[:, :, 2:7] = 60.0
    return v


def test_source_frames_put_the_box_on_the_inputs_voxels(volume):
    seq = to_sequence(volume, 5, 16)  # z_index 0, 2, 4, 6, 8
    p = FakeVideoPredictor()
    prop = MedSAM2Propagator(MedSAM2Settings("unused.pt", largest_component=False), predictor=p)
    seq_mask, src = prop.lift(seq, volume, 2, np.array([[4, 2, 8, 10]]))
    assert src.shape == volume.shape and seq_mask.shape == (5, 16, 16)
    assert ("propagate", 4, False) in p.calls and p.calls[0] == ("init_state", 9)  # key = source z 4
    want = np.zeros((40, 24), bool)
    want[10:20, 3:15] = True  # x 4..8 of 16 -> 10..20 of 40; y 2..10 of 16 -> 3..15 of 24
    assert all(np.array_equal(src[:, :, z], want) for z in range(2, 7))
    assert not src[:, :, [0, 1, 7, 8]].any()
    assert np.array_equal(seq_mask, mask_to_sequence(src, seq))


def test_sequence_frames_work_on_the_policys_slices(volume):
    seq = to_sequence(volume, 5, 16)
    p = FakeVideoPredictor()
    prop = MedSAM2Propagator(MedSAM2Settings("unused.pt", frames="sequence", largest_component=False), predictor=p)
    seq_mask, src = prop.lift(seq, None, 2, np.array([[4, 2, 8, 10]]))
    assert p.calls[0] == ("init_state", 5) and ("propagate", 2, True) in p.calls
    assert [bool(seq_mask[t].any()) for t in range(5)] == [False, True, True, True, False]
    assert seq_mask[2, 4:8, 2:10].all() and seq_mask[2].sum() == 32
    assert src.shape == volume.shape and src[:, :, 4].any()


def test_source_frames_need_the_volume(volume):
    prop = MedSAM2Propagator(MedSAM2Settings("unused.pt"), predictor=FakeVideoPredictor())
    with pytest.raises(ValueError, match="volume"):
        prop.lift(to_sequence(volume, 5, 16), None, 2, np.array([[4, 2, 8, 10]]))


def test_the_predictor_is_built_once_on_first_use(volume):
    built = []
    prop = MedSAM2Propagator(MedSAM2Settings("unused.pt"), build=lambda s: built.append(s) or FakeVideoPredictor())
    assert built == []
    seq = to_sequence(volume, 5, 16)
    prop.lift(seq, volume, 2, np.array([[4, 2, 8, 10]]))
    prop.lift(seq, volume, 3, np.array([[4, 2, 8, 10]]))
    assert len(built) == 1


# --- settings and the choice of propagator ---------------------------------------------------------


def test_settings_from_conf_and_medsam2s_512_overrides():
    assert MedSAM2Settings.from_conf({}) is None
    s = MedSAM2Settings.from_conf({"medvolr1_medsam2": "/m.pt", "medvolr1_medsam2_frames": "sequence", "medvolr1_medsam2_image_size": "1024"})
    assert (s.checkpoint, s.frames, s.image_size, s.config) == ("/m.pt", "sequence", 1024, "configs/sam2.1/sam2.1_hiera_t.yaml")
    o = MedSAM2Settings("/m.pt").hydra_overrides()
    assert "++model.image_size=512" in o and sum("feat_sizes=[32,32]" in x for x in o) == 2


@pytest.mark.parametrize("conf, match", [({"medvolr1_medsam2_frames": "axial"}, "frames"), ({"medvolr1_medsam2_image_size": "big"}, "integer"), ({"medvolr1_medsam2_image_size": "500"}, "multiple of 16")])
def test_bad_settings_are_clear_errors(conf, match):
    with pytest.raises(ValueError, match=match):
        MedSAM2Settings.from_conf({"medvolr1_medsam2": "/m.pt", **conf})


def test_nothing_configured_means_the_slice_propagator():
    c = choose_propagator({})
    assert c.name == SLICE_PROPAGATOR and c.settings is None and "--conf medvolr1_medsam2" in c.reason


def test_a_missing_checkpoint_file_is_named(tmp_path):
    c = choose_propagator({"medvolr1_medsam2": str(tmp_path / "MedSAM2_latest.pt")})
    assert c.name == SLICE_PROPAGATOR and "no MedSAM2 checkpoint at" in c.reason and "MedSAM2_latest.pt" in c.reason


def test_sam2_not_installed_is_the_reason(tmp_path, monkeypatch):
    ckpt = tmp_path / "m.pt"
    ckpt.write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "sam2", None)  # import sam2 -> ModuleNotFoundError
    assert sam2_import_error() == "the sam2 package is not installed"
    c = choose_propagator({"medvolr1_medsam2": str(ckpt)})
    assert c.name == SLICE_PROPAGATOR and c.reason.startswith("the sam2 package is not installed") and c.to_json()["name"] == SLICE_PROPAGATOR


def test_a_sam2_that_does_not_import_is_the_reason(tmp_path, monkeypatch):
    ckpt = tmp_path / "m.pt"
    ckpt.write_bytes(b"x")
    broken = types.ModuleType("sam2.build_sam")

    def fail(name):
        raise RuntimeError("operator torchvision::nms does not exist")

    broken.__getattr__ = fail
    monkeypatch.setitem(sys.modules, "sam2", types.ModuleType("sam2"))
    monkeypatch.setitem(sys.modules, "sam2.build_sam", broken)
    ok, why = medsam2_status(str(ckpt))
    assert not ok and "torchvision::nms" in why


def test_sam2_and_the_checkpoint_choose_medsam2_and_build_with_its_settings(tmp_path, monkeypatch):
    ckpt = tmp_path / "MedSAM2_latest.pt"
    ckpt.write_bytes(b"x")
    calls = install_fake_sam2(monkeypatch)
    c = choose_propagator({"medvolr1_medsam2": str(ckpt), "medvolr1_medsam2_device": "cpu"})
    assert c.name == MEDSAM2 and str(ckpt) in c.reason
    assert isinstance(load_predictor(c.settings), FakeVideoPredictor)
    assert calls == [{"config": "configs/sam2.1/sam2.1_hiera_t.yaml", "ckpt": str(ckpt), "device": "cpu", "overrides": c.settings.hydra_overrides()}]


def test_the_app_config_logs_and_hands_the_choice_to_the_infer_task(tmp_path, caplog):
    from lib.configs.medvolr1 import Medvolr1

    cfg = Medvolr1()
    with caplog.at_level("WARNING"):
        cfg.init("medvolr1", str(tmp_path), {"medvolr1_medsam2": str(tmp_path / "none.pt")}, None)
    assert cfg.propagator.name == SLICE_PROPAGATOR and "MedSAM2 requested but unavailable" in caplog.text
    assert cfg.infer()["medvolr1"].propagator_choice is cfg.propagator
