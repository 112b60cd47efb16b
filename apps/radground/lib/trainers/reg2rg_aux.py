"""Training aids for reading findings, for the Reg2RG train task (both off by default, 004's behaviour).

1. Finding-label auxiliary loss (``finding_aux_weight`` > 0).

004 trains the visual side through the LM loss alone. Here the encoders start from scratch on a
few hundred studies, and the finding words are a sliver of that loss: the lung and thyroid
features did not learn to tell a nodule from a normal organ, so the LM wrote the prior. This head
reads the CE labels (:data:`CE_LABELS`, the project's parser on the target text) straight from the
visual tokens the LM sees, a multi-label BCE that gives the encoder a direct signal:

- full model: each region's texture tokens (mean over them) -> the labels of that region's report;
- GLB only: the global tokens -> the labels of the whole study (the same recipe for the ablation,
  whose only visual input is the global volume).

The head is a training aid: it is not part of the network, and checkpoints do not hold it.

2. Decision-sentence weighting (``decision_weight`` > 1, :func:`decision_weights`): the tokens of each
   region's RRA prefix and first sentence weigh more in the LM loss. That sentence is where a report
   says normal or abnormal ("No pulmonary nodules or masses." against "A 12 mm solid nodule ..."); in
   the plain mean it is a few tokens among the many of randomly drawn normal wording.
"""
from __future__ import annotations

import re
from typing import Mapping, Optional, Sequence

import torch
from torch import nn

from lib.data.region_reports import region_prefix
from lib.metrics.report_generation import CE_LABELS, finding_labels

LABELS: tuple[str, ...] = tuple(CE_LABELS)


def label_vector(labels: set[str]) -> list[float]:
    return [1.0 if name in labels else 0.0 for name in LABELS]


def region_label_targets(names: Sequence[str], reports: Mapping[str, str]) -> torch.Tensor:
    """(R, n_labels) multi-hot CE labels of each region's report, rows in ``names`` order."""
    return torch.tensor([label_vector(finding_labels(reports[r], r)) for r in names], dtype=torch.float32)


def study_label_target(reports: Mapping[str, str]) -> torch.Tensor:
    """(1, n_labels) multi-hot CE labels of the whole study."""
    found: set[str] = set()
    for r, text in reports.items():
        found |= finding_labels(text, r)
    return torch.tensor([label_vector(found)], dtype=torch.float32)


class FindingHead(nn.Module):
    """Mean of visual tokens (N, T, H) -> (N, n_labels) logits."""

    def __init__(self, hidden: int):
        super().__init__()
        self.linear = nn.Linear(hidden, len(LABELS))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.linear(tokens.mean(dim=1))


def finding_aux_loss(
    head: FindingHead,
    glb: Optional[torch.Tensor],
    reg: Optional[torch.Tensor],
    n_texture: int,
    names: Sequence[str],
    reports: Mapping[str, str],
) -> Optional[torch.Tensor]:
    """BCE of the head on the region texture tokens (the first ``n_texture`` of each region's tokens)
    when there are any, else on the global tokens; None when the model has neither."""
    bce = nn.functional.binary_cross_entropy_with_logits
    if reg is not None and n_texture > 0:
        target = region_label_targets(names, reports).to(reg.device)
        return bce(head(reg[:, :n_texture].float()), target)
    if glb is not None:
        target = study_label_target(reports).to(glb.device)
        return bce(head(glb[None].float()), target)
    return None


_SENTENCE_END = re.compile(r"[.!?](\s|$)")


def first_sentence(text: str) -> str:
    m = _SENTENCE_END.search(text)
    return text[: m.end()].rstrip() if m else text


def decision_weights(tokenizer, order: Sequence[str], reports: Mapping[str, str], weight: float) -> torch.Tensor:
    """A weight per target token of :func:`lib.data.region_reports.build_target` (order, reports) plus EOS,
    as :func:`encode_example` tokenizes it: ``weight`` on the tokens that start inside a region's prefix
    or the first sentence of its report, 1 elsewhere."""
    pieces, spans, pos = [], [], 1  # the target is tokenized with a leading space
    for i, area in enumerate(order):
        report = " ".join(str(reports.get(area, "")).split())
        piece = f"{region_prefix(i, area)} {report}"
        if pieces:
            pos += 1  # the joining space
        head = f"{region_prefix(i, area)} {first_sentence(report)}"
        spans.append((pos, pos + len(head)))
        pieces.append(piece)
        pos += len(piece)
    text = " " + " ".join(pieces)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    w = [weight if any(a <= start < b for a, b in spans) else 1.0 for start, _ in enc["offset_mapping"]]
    return torch.tensor(w + [1.0], dtype=torch.float32)
