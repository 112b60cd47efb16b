"""MedVol-R1 (002): a free-form query -> key axial slice + 2D boxes (with reasoning) -> 3D mask.

Modules, one job each: ``volume`` (the slice sequence), ``policy`` (the shared VLM reading it),
``answer`` (the output format, parsed strictly), ``targets`` (SFT targets), ``rewards`` (R_f, R_a,
R_s, R_c), ``grpo`` (eqs. 2-3), ``training`` (SFT and GRPO loops), ``propagator`` (+ ``_train``,
``medsam2``: lifting the anchor to 3D), ``pipeline`` / ``evaluation`` / ``checkpoint`` /
``samples`` (glue shared by the tasks and scripts).
"""
