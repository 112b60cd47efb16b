"""Report generation metrics: NLG from pycocoevalcap, CE labels from the project's parser, region recognition."""
from __future__ import annotations

import pytest

from lib.data.synthetic import generate_study
from lib.metrics.report_generation import (
    CE_LABELS,
    FINDING_KIND_LABEL,
    clinical_efficacy,
    finding_labels,
    java_available,
    nlg_scores,
    region_finding_labels,
    region_finding_scores,
    study_region_finding_counts,
    region_recognition,
)

REFS = ["The heart is enlarged. No pericardial effusion.", "A 6 mm solid nodule in the right upper lobe."]


def test_identical_text_scores_one():
    s = nlg_scores(REFS, REFS, meteor=False)
    for k in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L"):
        assert s[k] == pytest.approx(1.0, abs=1e-6), k


def test_scores_fall_with_worse_text():
    close = ["The heart is enlarged. No pericardial effusion seen.", "A 6 mm nodule in the right upper lobe."]
    far = ["Degenerative changes of the thoracic spine.", "The esophagus is unremarkable."]
    a, b = nlg_scores(REFS, close, meteor=False), nlg_scores(REFS, far, meteor=False)
    for k in ("BLEU-1", "BLEU-4", "ROUGE-L"):
        assert 0 <= b[k] < a[k] < 1, k
    assert a["BLEU-1"] >= a["BLEU-2"] >= a["BLEU-3"] >= a["BLEU-4"]


@pytest.mark.slow  # one METEOR java start: ~15-20 s
@pytest.mark.skipif(not java_available(), reason="METEOR 1.5 runs in java")
def test_meteor_offline_with_synonyms():
    """METEOR 1.5 runs offline; its WordNet synonym stage (inside the jar) counts 'big' against 'large', not 'purple'."""
    assert nlg_scores(REFS, REFS)["METEOR"] == pytest.approx(1.0, abs=1e-3)
    syn = nlg_scores(["a large pleural effusion"], ["a big pleural effusion"])["METEOR"]
    other = nlg_scores(["a large pleural effusion"], ["a purple pleural effusion"])["METEOR"]
    assert syn > other


def test_empty_prediction_scores_zero_not_an_error():
    s = nlg_scores(["The lungs are clear."], [""], meteor=False)
    assert s["BLEU-1"] < 1e-6 and s["ROUGE-L"] == 0 and s["METEOR"] is None
    with pytest.raises(ValueError):
        nlg_scores(["a"], ["a", "b"])


def test_finding_labels_follow_the_parser_negation_and_region():
    assert finding_labels("Mild cardiomegaly. No pericardial effusion.") == {"cardiomegaly"}
    assert finding_labels("Small pericardial effusion.") == {"pericardial effusion"}
    assert finding_labels("There is a moderate left pleural effusion.") == {"pleural effusion"}
    assert finding_labels("No pleural effusion or pneumothorax.") == set()
    assert finding_labels("A 9 mm hypodense nodule in the left thyroid lobe.") == {"thyroid nodule"}
    assert finding_labels("A 5 mm ground-glass nodule in the left lower lobe.") == {"lung nodule"}
    assert finding_labels("The lungs are clear. No pulmonary nodules or masses.") == set()
    assert finding_labels("") == set() and finding_labels("   ") == set()


def test_labels_of_truth_region_reports_are_the_truth_findings():
    """On synthetic studies the labeller recovers exactly the findings the engine drew."""
    n_positive = 0
    for seed in range(25):
        s = generate_study(seed, "tiny", body="chest")
        want = {FINDING_KIND_LABEL[f["kind"]] for f in s.truth["findings"]}
        assert region_finding_labels(s.truth["region_reports"]) == want, seed
        n_positive += bool(want)
    assert n_positive >= 10
    assert set(FINDING_KIND_LABEL.values()) == set(CE_LABELS)


def test_clinical_efficacy_counts_pairs():
    refs = [{"cardiomegaly", "lung nodule"}, set(), {"pleural effusion"}]
    preds = [{"cardiomegaly"}, {"emphysema"}, {"pleural effusion", "lung nodule"}]
    ce = clinical_efficacy(refs, preds)
    assert (ce["tp"], ce["fp"], ce["fn"]) == (2, 2, 1)
    assert ce["precision"] == pytest.approx(0.5) and ce["recall"] == pytest.approx(2 / 3)
    assert ce["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert ce["per_label"]["lung nodule"]["fp"] == 1 and ce["per_label"]["lung nodule"]["fn"] == 1
    assert clinical_efficacy([set()], [set()])["f1"] == 0.0


def test_region_recognition_counts_as_table_3():
    pairs = [("lung", "lung"), ("lung", "pleura"), ("pleura", "pleura"), ("heart", None), ("heart", "heart")]
    r = region_recognition(pairs, ["lung", "pleura", "heart", "bone"])
    assert (r["lung"]["tp"], r["lung"]["fp"], r["lung"]["fn"]) == (1, 0, 1)
    assert (r["pleura"]["tp"], r["pleura"]["fp"], r["pleura"]["fn"]) == (1, 1, 0)
    assert (r["heart"]["tp"], r["heart"]["fp"], r["heart"]["fn"]) == (1, 0, 1)
    assert r["pleura"]["precision"] == pytest.approx(0.5) and r["heart"]["recall"] == pytest.approx(0.5)
    assert r["bone"]["f1"] == 0.0


def test_region_finding_scores_count_each_region_on_its_own_labels():
    refs = [{"lung": {"lung nodule"}, "pleura": {"pleural effusion"}}, {"heart": {"cardiomegaly"}}]
    preds = [
        # lung: the nodule (tp) and a mass (fp); the pleura section is normal (fn); an effusion written in the lung section counts for nothing
        {"lung": "Solid nodule in the right upper lobe measuring 6 x 5 mm. There is a spiculated mass in the left lower lobe. Small right pleural effusion.", "pleura": "No pleural effusion."},
        {"heart": "The heart is enlarged.", "thyroid": "No thyroid nodule."},
    ]
    r = region_finding_scores(refs, preds, ["lung", "pleura", "heart", "thyroid"])
    assert (r["lung"]["tp"], r["lung"]["fp"], r["lung"]["fn"]) == (1, 1, 0)
    assert (r["pleura"]["tp"], r["pleura"]["fp"], r["pleura"]["fn"]) == (0, 0, 1)
    assert (r["heart"]["tp"], r["heart"]["fp"], r["heart"]["fn"]) == (1, 0, 0)
    assert r["thyroid"]["tp"] + r["thyroid"]["fp"] + r["thyroid"]["fn"] == 0
    assert (r["all"]["tp"], r["all"]["fp"], r["all"]["fn"]) == (2, 1, 1)
    assert r["all"]["precision"] == pytest.approx(2 / 3) and r["all"]["recall"] == pytest.approx(2 / 3)


def test_study_region_finding_counts_keep_each_study_apart_and_sum_to_the_scores():
    refs = [{"lung": {"lung nodule"}, "pleura": {"pleural effusion"}}, {"heart": {"cardiomegaly"}}]
    preds = [
        {"lung": "Solid nodule in the right upper lobe measuring 6 x 5 mm. There is a spiculated mass in the left lower lobe.", "pleura": "No pleural effusion."},
        {"heart": "The heart is enlarged."},
    ]
    regions = ["lung", "pleura", "heart"]
    per_study = study_region_finding_counts(refs, preds, regions)
    assert per_study[0]["lung"] == {"tp": 1, "fp": 1, "fn": 0}
    assert per_study[0]["pleura"] == {"tp": 0, "fp": 0, "fn": 1}
    assert per_study[1]["heart"] == {"tp": 1, "fp": 0, "fn": 0}
    assert per_study[1]["lung"] == {"tp": 0, "fp": 0, "fn": 0}
    total = region_finding_scores(refs, preds, regions)["all"]
    assert [sum(s[r][k] for s in per_study for r in regions) for k in ("tp", "fp", "fn")] == [total["tp"], total["fp"], total["fn"]]
    with pytest.raises(ValueError):
        study_region_finding_counts(refs, preds[:1], regions)
