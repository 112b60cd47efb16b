"""Active learning for radground: which unlabelled study to annotate next, and retraining when
enough new masks have arrived (issue 9).

- :mod:`.signals`: per-lesion / per-study uncertainty, report inconsistency, model disagreement
  (pure functions of the grounding results);
- :mod:`.grounding`: one GLeVE grounding of a study plus test-time-augmented passes;
- :mod:`.store`: the scores in MONAI Label's datastore info;
- :mod:`.scoring`: MONAI Label ``ScoringMethod`` s; :mod:`.strategies`: ``Strategy`` s;
- :mod:`.trigger`: start the train task after N new final labels.
"""
