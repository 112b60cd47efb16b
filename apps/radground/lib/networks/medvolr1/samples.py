"""Query items: (query, slice sequence, target on the sequence) from a study in memory or on disk.

One study gives several items (one per implicit query of :mod:`lib.data.queries`), all sharing the
study's slice sequence. Items whose target vanishes on the sequence grid are dropped.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Optional

import nibabel as nib
import numpy as np

from lib.data.queries import QUERY_KINDS, Query, study_queries
from lib.data.studies import organ_path, read_truth, truth_lesions_path

from .volume import SliceSequence, mask_to_sequence, to_sequence


@dataclass
class QueryItem:
    query: Query
    seq: SliceSequence
    seq_mask: np.ndarray  # (T, S, S) bool
    source_mask: Optional[np.ndarray] = None  # target on the study's own grid (evaluation)


def items_from_arrays(study_id, image, organs, lesions, truth, n_slices, size, seed=0, phrasing="all", kinds=QUERY_KINDS, keep_source=False) -> list[QueryItem]:
    seq = to_sequence(image, n_slices, size)
    out = []
    for q in study_queries(study_id, truth or {}, organs, lesions, seed=seed, phrasing=phrasing, kinds=kinds):
        m = q.mask(organs, lesions)
        sm = mask_to_sequence(m, seq)
        if sm.any():
            out.append(QueryItem(q, seq, sm, m if keep_source else None))
    return out


def items_from_study(study, n_slices: int, size: int, **kw) -> list[QueryItem]:
    """From a :class:`lib.data.synthetic.Study` in memory."""
    return items_from_arrays(study.study_id, study.image, study.organs, study.lesions, study.truth, n_slices, size, seed=study.seed, **kw)


def items_from_datastore(studies_dir: str, image_id: str, n_slices: int, size: int, seed: int = 0, **kw) -> list[QueryItem]:
    """From a study folder (image + ``labels/organs`` + truth); [] when the study has no structure map."""
    if not os.path.exists(organ_path(studies_dir, image_id)):
        return []
    image = np.asarray(nib.load(os.path.join(studies_dir, f"{image_id}.nii.gz")).dataobj)
    organs = np.asarray(nib.load(organ_path(studies_dir, image_id)).dataobj)
    les_path = truth_lesions_path(studies_dir, image_id)
    lesions = np.asarray(nib.load(les_path).dataobj) if os.path.exists(les_path) else None
    return items_from_arrays(image_id, image, organs, lesions, read_truth(studies_dir, image_id), n_slices, size, seed=seed, **kw)


def synthetic_items(seeds: Iterable[int], preset: str, n_slices: int, size: int, body: str = "abdomen", **kw) -> list[QueryItem]:
    from lib.data.synthetic import generate_study

    out = []
    for s in seeds:
        out.extend(items_from_study(generate_study(int(s), preset, body=body), n_slices, size, **kw))
    return out
