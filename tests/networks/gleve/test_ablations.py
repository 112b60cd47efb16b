"""Table 2 ablation switches: each one really removes its module and the rest still trains."""
from __future__ import annotations

import torch

from lib.networks.gleve import GLeVE, GLeVEConfig, GLeVELoss, build_lesion_graph
from lib.reports.parse import parse_report

from .synthetic import REPORT

HASH = {"text_encoder": {"backend": "hash", "dim": 32}, "text_dim": 32}
# same first sentence; the second lesion now shares the liver (intra-organ relation with lesion 1)
OTHER = "Liver: 6 mm hypodense lesion in segment VII of the liver. A second 25 mm hyperdense lesion in segment IV of the liver."


def _model(**kw) -> GLeVE:
    torch.manual_seed(0)
    return GLeVE(GLeVEConfig.tiny(**{**HASH, **kw}))


def _trains(model, scene) -> dict:
    image, organs, hu, masks = scene
    out = model(image, organs, build_lesion_graph(parse_report(REPORT)), hu_image=hu, spacing=(1, 1, 1), target_masks=masks)
    losses = GLeVELoss()(out, masks)
    assert torch.isfinite(losses["total"])
    losses["total"].backward()
    return {"out": out, "losses": losses}


def test_without_lequ_a_lesion_query_ignores_the_other_lesions(scene):
    graph_a, graph_b = (build_lesion_graph(parse_report(r)) for r in (REPORT, OTHER))
    with_graph, without = _model(), _model(use_lequ=False)
    za, zb = with_graph.encode_graph(graph_a), with_graph.encode_graph(graph_b)
    assert not torch.allclose(za[0], zb[0], atol=1e-5)  # graph reasoning: the other liver lesion changes lesion 1's z
    za, zb = without.encode_graph(graph_a), without.encode_graph(graph_b)
    assert torch.allclose(za[0], zb[0], atol=1e-6)  # one description on its own
    _trains(without, scene)
    assert all(p.grad is None for p in without.graph.layers.parameters())


def test_without_anver_no_prior_and_no_verification(scene):
    image, organs, hu, _ = scene
    model = _model(use_anver=False).eval()
    graph = build_lesion_graph(parse_report(REPORT))
    with torch.no_grad():
        f1 = model.organ_features(image, organs)
        f2 = model.organ_features(image, torch.zeros_like(organs))
        out = model(image, organs, graph, hu_image=hu)
    assert torch.equal(f1, f2)  # the organ maps no longer modulate the features
    for les in out.lesions:
        assert les.verification is None
        if les.candidates:
            assert les.selected == 0  # the highest-response component
    model.train()
    res = _trains(model, scene)
    assert float(res["losses"]["uni"]) == 0.0
    assert all(p.grad is None for p in model.film.parameters()) and all(p.grad is None for p in model.verifier.parameters())


def test_without_ocre_the_coarse_candidate_is_the_answer(scene):
    model = _model(use_ocre=False)
    res = _trains(model, scene)
    for les in res["out"].lesions:
        assert les.cube is None
        cand = les.candidates[les.chosen].mask
        assert bool(((torch.sigmoid(les.refined_logits) > 0.5) <= cand).all())  # nothing outside the candidate
    assert all(p.grad is None for p in model.refiner.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.query_bank.parameters())  # the response still learns
