"""Sentence -> box-set targets of MedGrounder (003 §3.4): the weak-anatomy clean-up rules (stage 1)
and the finding boxes of the synthetic truth (stage 2), on generated chest CT studies read back
from the datastore layout (``labels/organs``, ``truth/``, ``truth/<id>_lesions``)."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from lib.anatomy.labels import ANATOMY_STRUCTURES
from lib.data.grounding_targets import (
    PHRASE_NOUNS,
    AnatomyBoxes,
    anatomy_phrases,
    anatomy_targets,
    finding_targets,
    linked_nodes,
    most_specific,
    supervised_phrase_nouns,
)
from lib.data.studies import generate_dataset, organ_path, read_report, read_truth, truth_lesions_path
from lib.metrics.boxes import mask_to_box
from lib.reports import parse_report

BILATERAL_SEED = 20031  # its report has "Small bilateral pleural effusions."


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("targets"))
    generate_dataset(d, [20001, BILATERAL_SEED], preset="tiny", body="chest")
    return d


def _load(studies, sid):
    parsed = parse_report(read_report(studies, sid))
    organs = np.asarray(nib.load(organ_path(studies, sid)).dataobj)
    inst = np.asarray(nib.load(truth_lesions_path(studies, sid)).dataobj)
    return parsed, organs, inst, read_truth(studies, sid)


def test_raw_links_are_noisy_and_cleanup_keeps_the_most_specific():
    raw = linked_nodes("lung", "Consolidation in the right lower lobe.")
    assert raw == ["right lower lung zone", "right lung", "lungs"]  # ImaGenome-style: specific + broad
    assert most_specific(raw) == ["right lower lung zone"]
    two = most_specific(linked_nodes("lung", "Bilateral lower lobe opacities."))
    assert two == ["right lower lung zone", "left lower lung zone"]
    assert most_specific(linked_nodes("pleura", "Small bilateral pleural effusions.")) == ["right pleura", "left pleura"]
    assert most_specific(linked_nodes("heart", "Cardiomegaly.")) == ["heart"]
    assert most_specific(linked_nodes("bone", "Degenerative changes of the thoracic spine.")) == ["spine"]
    assert most_specific(linked_nodes("abdomen", "A 2 cm cyst in the left kidney.")) == ["left kidney"]
    assert linked_nodes(None, "COMPARISON: None.") == []


def test_negative_normal_and_non_diagnostic_sentences_have_no_box(studies):
    parsed, organs, _, _ = _load(studies, "chest_20001")
    targets = anatomy_targets(parsed, organs)
    assert len(targets) == len(parsed.sentences)
    kinds = {t.kind for t in targets}
    assert {"negative", "normal", "non_diagnostic", "finding"} <= kinds
    for t in targets:
        if t.kind != "finding":
            assert t.n_boxes == 0, t.text
    extra = parse_report("FINDINGS:\nNo pneumothorax. The pancreas is unremarkable. The heart is enlarged.")
    got = {t.text: t.n_boxes for t in anatomy_targets(extra, organs)}
    assert got["No pneumothorax."] == 0 and got["The pancreas is unremarkable."] == 0
    assert got["The heart is enlarged."] == 1


def test_anatomy_boxes_come_from_the_structure_map(studies):
    parsed, organs, _, _ = _load(studies, "chest_20001")
    anat = AnatomyBoxes(organs)
    heart = mask_to_box(organs == ANATOMY_STRUCTURES["heart"])
    assert np.array_equal(anat.box("heart"), heart)
    right, left = anat.box("right pleura"), anat.box("left pleura")
    assert right[3] <= anat.midline + 1 and left[0] >= anat.midline - 1  # patient right = low x (LPS)
    lung = anat.box("right lung")
    lower, upper = anat.box("right lower lung zone"), anat.box("right upper lung zone")
    assert lower[2] == lung[2] and upper[5] == lung[5] and lower[5] <= upper[2]  # z runs superior
    for t in anatomy_targets(parsed, organs):
        if t.kind == "finding":
            assert t.n_boxes >= 1 and all(anat.box(n) is not None for n in t.names)
            assert not any(n in ("lungs", "pleura", "bones") for n in t.names)  # never the broad parent


def test_bilateral_sentence_gives_two_boxes_in_both_stages(studies):
    sid = f"chest_{BILATERAL_SEED}"
    parsed, organs, inst, truth = _load(studies, sid)
    weak = [t for t in anatomy_targets(parsed, organs) if "bilateral pleural" in t.text.lower()]
    fine = [t for t in finding_targets(parsed, truth, inst) if "bilateral pleural" in t.text.lower()]
    assert weak and fine
    assert all(t.n_boxes == 2 and t.names == ["right pleura", "left pleura"] for t in weak)
    assert all(t.n_boxes == 2 for t in fine)
    # the two finding boxes lie on either side of the midline
    mid = AnatomyBoxes(organs).midline
    for t in fine:
        xs = sorted((b[0] + b[3]) / 2 for b in t.boxes)
        assert xs[0] < mid < xs[1]


def test_finding_targets_are_the_linked_instances_boxes(studies):
    parsed, _, inst, truth = _load(studies, "chest_20001")
    targets = finding_targets(parsed, truth, inst)
    linked = {tuple(s["span"]): s["lesion_ids"] for s in truth["sentences"] if s["kind"] == "finding"}
    n_checked = 0
    for t in targets:
        if t.kind != "finding":
            assert t.n_boxes == 0
            continue
        ids = next(v for span, v in linked.items() if max(0, min(span[1], t.span[1]) - max(span[0], t.span[0])) > 0)
        assert t.names == [f"finding {i}" for i in ids if (inst == i).any()]
        for name, box in zip(t.names, t.boxes):
            assert np.array_equal(box, mask_to_box(inst == int(name.split()[1])))
            n_checked += 1
    assert n_checked >= 1
    # without the instance map, the truth's inclusive box_vox gives the same boxes
    again = finding_targets(parsed, truth)
    for a, b in zip(targets, again):
        assert np.array_equal(a.boxes, b.boxes)


def test_phrase_augmentation_follows_the_same_rules(studies):
    _, organs, _, _ = _load(studies, "chest_20001")
    anat = AnatomyBoxes(organs)
    phrases = anatomy_phrases(np.random.default_rng(0), anat, 60)
    assert any(p.kind == "negative" for p in phrases) and any(p.n_boxes == 2 for p in phrases)
    for p in phrases:
        if p.kind == "negative":
            assert p.n_boxes == 0 and p.text.startswith("No ")
        elif p.text.lower().startswith("bilateral"):
            assert p.n_boxes == 2
        else:
            assert p.n_boxes == 1


def test_replay_phrases_leave_out_the_nouns_stage2_grounds(studies):
    """Stage-2 rehearsal draws stage-1 phrases only with nouns no groundable stage-2 sentence uses
    (else "Left basilar atelectasis." -> lung zone would contradict "Plate-like atelectasis in the
    left lower lobe." -> the atelectasis box)."""
    parsed, organs, inst, truth = _load(studies, f"chest_{BILATERAL_SEED}")
    grounded = [t.text for t in finding_targets(parsed, truth, inst) if t.n_boxes]
    nouns = supervised_phrase_nouns(grounded)
    assert "pleural effusion" in nouns and "opacity" not in nouns  # "Small bilateral pleural effusions."
    assert supervised_phrase_nouns(["Plate-like atelectasis in the left lower lobe.", "Multiple bilateral pulmonary nodules."]) == {"atelectasis", "nodule"}
    assert supervised_phrase_nouns(["The heart is enlarged."]) == set()
    anat = AnatomyBoxes(organs)
    drawn = lambda phrases: supervised_phrase_nouns(p.text for p in phrases)  # noqa: E731
    assert drawn(anatomy_phrases(np.random.default_rng(0), anat, 200)) == set(PHRASE_NOUNS)
    kept = anatomy_phrases(np.random.default_rng(0), anat, 200, exclude_nouns=nouns)
    assert len(kept) == 200 and drawn(kept) == set(PHRASE_NOUNS) - nouns
    only_lungs = anatomy_phrases(np.random.default_rng(1), anat, 50, exclude_nouns=["pleural effusion", "pleural thickening"])
    assert len(only_lungs) == 50 and not any("pleural" in p.text for p in only_lungs)
    assert anatomy_phrases(np.random.default_rng(0), anat, 10, exclude_nouns=PHRASE_NOUNS) == []
    # labelled by the same rules: a bilateral lower-zone opacity phrase -> both lower lung zones
    both = [p for p in kept if p.text.lower().startswith("bilateral") and "opacities" in p.text and ("lower" in p.text or "basilar" in p.text)]
    assert both and all(p.names == ["right lower lung zone", "left lower lung zone"] for p in both)


def test_multiple_nodules_sentence_links_every_nodule():
    """Two or more lung nodules are summed up in the impression by one sentence whose stage-2
    target is every nodule's box (a multi-box case besides bilateral effusions)."""
    from lib.data.synthetic.study import generate_study

    st = generate_study(20001, "small", body="chest")  # two right-lung nodules
    nodules = [f["id"] for f in st.truth["findings"] if f["kind"] == "nodule" and f["n_voxels"]]
    assert len(nodules) >= 2
    fine = [t for t in finding_targets(parse_report(st.report), st.truth, st.lesions) if t.text.startswith("Multiple")]
    assert len(fine) == 1 and sorted(fine[0].names) == sorted(f"finding {i}" for i in nodules) and fine[0].n_boxes == len(nodules)
