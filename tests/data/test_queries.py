import numpy as np
import pytest

from lib.anatomy.labels import ANATOMY_STRUCTURES, ORGAN_DISPLAY
from lib.data.queries import FUNCTION_PHRASES, QUERY_KINDS, study_queries
from lib.data.synthetic import generate_study


@pytest.fixture(scope="module")
def study():
    return generate_study(3, "small")  # two left renal lesions: a cyst and a hyperdense one


def queries(study, **kw):
    return study_queries(study.study_id, study.truth, study.organs, study.lesions, seed=study.seed, **kw)


def test_every_query_has_a_non_empty_target_mask_matching_its_structure(study):
    qs = queries(study)
    assert {q.kind for q in qs} >= {"organ_function", "organ_paraphrase", "lesion_organ"}
    for q in qs:
        m = q.mask(study.organs, study.lesions)
        assert m.any(), q
        if q.structure_ids:
            assert np.array_equal(m, np.isin(study.organs, q.structure_ids))


def test_function_queries_name_the_organ_by_function_not_by_name(study):
    for q in queries(study, kinds=["organ_function"]):
        assert q.text in FUNCTION_PHRASES[q.target]
        assert ORGAN_DISPLAY[q.target] not in q.text


def test_lesion_organ_query_resolves_to_the_kidney_holding_the_lesion(study):
    qs = [q for q in queries(study, kinds=["lesion_organ"])]
    kid = [q for q in qs if q.text.startswith("the kidney")]
    assert kid, qs
    holder = {l["organ"] for l in study.truth["lesions"]}
    assert all(q.target in holder and q.structure_ids == (ANATOMY_STRUCTURES[q.target],) for q in kid)


def test_ambiguous_lesion_organ_queries_are_not_emitted(study):
    truth = dict(study.truth)
    a, b = dict(truth["lesions"][0]), dict(truth["lesions"][0])
    a["organ"], b["organ"] = "kidney_left", "kidney_right"
    a["density"] = b["density"] = "cystic"
    truth["lesions"] = [a, b]  # a cyst in each kidney: "the kidney that contains the cyst" is ambiguous
    qs = study_queries(study.study_id, truth, study.organs, study.lesions, kinds=["lesion_organ"])
    assert not [q for q in qs if "kidney" in q.text and "cyst" in q.text]


def test_lesion_queries_need_visible_lesions(study):
    none = queries(study, kinds=["lesion"], min_lesion_voxels=10_000)
    assert none == []
    some = queries(study, kinds=["lesion"], min_lesion_voxels=1)
    assert some and all(q.lesion_ids and q.mask(study.organs, study.lesions).sum() == (np.isin(study.lesions, q.lesion_ids)).sum() for q in some)


def test_deterministic_and_heldout_phrasings_are_never_drawn_in_training(study):
    assert queries(study) == queries(study)
    train = {q.text for s in range(20) for q in study_queries(study.study_id, study.truth, study.organs, study.lesions, seed=s, phrasing="train", kinds=["organ_function"])}
    held = {q.text for q in queries(study, phrasing="heldout", kinds=["organ_function"])}
    assert held and not train & held


def test_unknown_kind_or_phrasing_raises(study):
    with pytest.raises(ValueError):
        queries(study, kinds=["nonsense"])
    with pytest.raises(ValueError):
        queries(study, phrasing="weird")
    assert set(QUERY_KINDS) == {"organ_function", "organ_paraphrase", "lesion_organ", "lesion"}
