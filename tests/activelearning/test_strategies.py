"""``HighestScore``: the unlabelled study with the highest stored score, fresh from disk."""
from __future__ import annotations

from monailabel.datastore.local import LocalDatastore

from lib.activelearning.strategies import HighestScore


def test_picks_the_highest_scored_unlabelled_study(datastore):
    datastore.update_image_info("s1", {"report_uncertainty": 0.2})
    datastore.update_image_info("s2", {"report_uncertainty": 0.7})
    datastore.update_image_info("s4", {"report_uncertainty": 0.99})  # labelled: never offered
    # s3 has no score: not a candidate
    res = HighestScore("report_uncertainty")({"strategy": "report_uncertainty"}, datastore)
    assert res["id"] == "s2" and res["report_uncertainty"] == 0.7 and res["candidates"] == 2
    assert HighestScore("report_inconsistency")({"strategy": "report_inconsistency"}, datastore) is None


def test_sees_scores_another_process_wrote(datastore, tmp_path):
    """MONAI Label scores in a background process with its own datastore object."""
    other = LocalDatastore(str(tmp_path / "studies"), extensions=("*.nii.gz",), auto_reload=False)
    other.update_image_info("s3", {"report_uncertainty": 0.9})
    res = HighestScore("report_uncertainty")({"strategy": "report_uncertainty"}, datastore)
    assert res["id"] == "s3"


def test_recently_served_studies_can_be_skipped(datastore):
    import time

    datastore.update_image_info("s1", {"report_uncertainty": 0.2})
    datastore.update_image_info("s2", {"report_uncertainty": 0.7, "strategy": {"report_uncertainty": {"ts": int(time.time())}}})
    s = HighestScore("report_uncertainty")
    assert s({"strategy": "report_uncertainty"}, datastore)["id"] == "s2"
    assert s({"strategy": "report_uncertainty", "exclude_served_within_s": 600}, datastore)["id"] == "s1"
