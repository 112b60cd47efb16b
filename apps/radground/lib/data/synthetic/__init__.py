"""Deterministic synthetic abdominal CT studies with radiology reports and grounding truth.

Modules, one job each: ``geometry`` (mm shapes), ``phantom`` (the seeded patient and its
rasterisation), ``sublocations`` (Couinaud segment / kidney third / pancreas part),
``lesions`` (placement, appearance, truth), ``phrases`` + ``templates`` (lesion wording),
``report_writer`` (the whole report and sentence truth), ``sentences`` (the splitting
convention), ``study`` (one study end to end).
"""
from .sentences import split_sentences
from .study import PRESETS, Study, generate_study, study_id_for

__all__ = ["PRESETS", "Study", "generate_study", "split_sentences", "study_id_for"]
