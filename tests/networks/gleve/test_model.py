"""The whole GLeVE model: configs, forward/backward on a tiny 32^3 study, inference, edge cases."""
from __future__ import annotations

import pytest
import torch

from lib.networks.gleve import GLeVE, GLeVEConfig, GLeVELoss, build_lesion_graph
from lib.networks.text_encoder import HFSentenceEncoder
from lib.reports.parse import parse_report

from .synthetic import REPORT, make_scene

HASH = {"text_encoder": {"backend": "hash", "dim": 32}, "text_dim": 32}


def _model(seed: int = 0, **kw) -> GLeVE:
    torch.manual_seed(seed)
    return GLeVE(GLeVEConfig.tiny(**{**HASH, **kw}))


def test_configs():
    tiny, paper = GLeVEConfig.tiny(), GLeVEConfig.paper()
    assert (tiny.channels, tiny.d, tiny.graph_layers, tiny.num_queries, tiny.top_k, tiny.octree_depth) == (16, 64, 2, 4, 3, 2)
    assert (paper.num_queries, paper.top_k, paper.octree_depth, paper.visual["arch"]) == (8, 4, 3, "segresnet")
    assert tiny.text_encoder == {"backend": "minilm"} == paper.text_encoder
    assert GLeVEConfig.from_dict(tiny.to_dict()) == tiny
    assert GLeVEConfig.paper(top_k=2).top_k == 2
    with pytest.raises(ValueError, match="unknown"):
        GLeVEConfig.from_dict({"queries": 3})


def test_paper_size_builds_without_loading_the_text_encoder():
    m = GLeVE(GLeVEConfig.paper())
    assert m._text_encoder is None
    assert not any("text" in k for k in m.state_dict())
    assert 1e6 < sum(p.numel() for p in m.parameters()) < 5e7


def test_forward_backward_tiny(scene):
    image, organs, hu, masks = scene
    model = _model()
    graph = build_lesion_graph(parse_report(REPORT))
    out = model(image, organs, graph, hu_image=hu, spacing=(1, 1, 1), target_masks=masks)
    n, shape = 2, tuple(image.shape[2:])
    assert out.responses.shape == (n, *shape) and out.queries.shape == (n, 4, 16) and out.z.shape == (n, 64)
    assert out.refined_logits().shape == (n, *shape)
    for les in out.lesions:
        assert 1 <= len(les.candidates) <= model.config.top_k + 1
        assert les.verification.scores.shape == (len(les.candidates),)
        assert les.verification.probs.sum().item() == pytest.approx(1.0, abs=1e-5)
        assert les.teacher_forced and les.chosen is not None and les.cube is not None
        assert bool((les.candidates[les.chosen].mask & (masks[les.index] > 0)).any())  # refines the annotated lesion
    losses = GLeVELoss()(out, masks)
    assert all(torch.isfinite(v) for v in losses.values())
    losses["total"].backward()
    for name in ("graph", "query_bank", "film", "refiner", "visual", "verifier"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert all(g is None or torch.isfinite(g).all() for g in grads), name
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name
    assert model.refiner.head.conv_out.weight.grad.abs().sum() > 0
    assert model.film.organ_emb.grad.abs().sum() > 0


def test_report_only_study_and_inference(scene):
    image, organs, hu, _ = scene
    model = _model().eval()
    graph = build_lesion_graph(parse_report(REPORT))
    with torch.no_grad():
        out = model(image, organs, graph, hu_image=hu)
    for les in out.lesions:
        if les.candidates:
            assert not les.teacher_forced and les.chosen == les.selected == int(les.verification.scores.argmax())
    lab = out.label_map()
    assert lab.shape == tuple(image.shape[2:]) and set(lab.unique().tolist()) <= {0, 1, 2}
    model.train()
    losses = GLeVELoss()(model(image, organs, graph, hu_image=hu), None)
    assert losses["seg"].item() == 0.0
    losses["total"].backward()


def test_empty_report_and_unknown_organ(scene):
    image, organs, hu, _ = scene
    model = _model()
    out = model(image, organs, build_lesion_graph(parse_report("The liver is normal.")), hu_image=hu)
    assert out.lesions == [] and out.refined_logits().shape == (0, 32, 32, 32) and out.label_map().sum() == 0
    loss = GLeVELoss()(out, None)["total"]
    assert loss.requires_grad
    loss.backward()
    out = model(image, organs, build_lesion_graph(parse_report("A 7 mm nodule in the right lower lobe of the lung.")), hu_image=hu)
    if out.lesions:
        assert out.lesions[0].organ_mask is None  # no lung channel among the organ maps
    with pytest.raises(ValueError):
        model(image[:, :, :16], organs, build_lesion_graph(parse_report(REPORT)))


def test_default_text_encoder_is_minilm():
    model = GLeVE(GLeVEConfig.tiny())
    graph = build_lesion_graph(parse_report(REPORT))
    z = model.encode_graph(graph)
    assert isinstance(model.text_encoder, HFSentenceEncoder) and z.shape == (2, 64)


@pytest.mark.slow
def test_tiny_overfit_raises_dice():
    """A few dozen steps on one study with one dark liver lesion and mask supervision (the full
    eq. 8 objective) take the refined mask of the inference path from nothing to the lesion."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 3-4x faster than 2 threads on a busy 2-core machine
    try:
        _overfit()
    finally:
        torch.set_num_threads(threads)


def _overfit():
    image, organs, hu, masks = make_scene(seed=3)
    graph = build_lesion_graph(parse_report("Liver: 6 mm hypodense lesion in segment VII of the liver."))
    target = masks[:1]
    model = _model(seed=0)
    lossf = model.make_loss()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def dice() -> float:
        model.eval()
        with torch.no_grad():
            p = model(image, organs, graph, hu_image=hu).refined_probs()[0] > 0.5
        model.train()
        t = target[0] > 0
        return float(2 * (p & t).sum() / (p.sum() + t.sum()))

    before = dice()
    for _ in range(60):
        out = model(image, organs, graph, hu_image=hu, target_masks=target)
        loss = lossf(out, target)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = dice()
    assert after > max(0.6, before + 0.3), (before, after)


def test_make_loss_shares_tau_and_text_dim_is_checked(scene):
    model = _model(tau=0.3, loss={"lambda_sep": 2.0})
    w = model.make_loss().weights
    assert (w.tau, w.lambda_sep, w.lambda_seg) == (0.3, 2.0, 1.0)
    graph = build_lesion_graph(parse_report(REPORT))
    graph.node_embeddings = torch.zeros(graph.num_nodes, 5)
    with pytest.raises(ValueError, match="text_dim"):
        model.encode_graph(graph)


def test_deep_copy_after_the_text_encoder_loaded_shares_it():
    """BasicInferTask deep-copies its network template; a loaded (tokenizer-locked) encoder must
    not be copied, so train-then-infer in one process works."""
    import copy

    model = GLeVE(GLeVEConfig.tiny())  # the MiniLM: a real HF tokenizer
    model.encode_graph(build_lesion_graph(parse_report(REPORT)))
    twin = copy.deepcopy(model)
    assert twin.text_encoder is model.text_encoder
    assert GLeVE(GLeVEConfig.tiny()).text_encoder is model.text_encoder  # one per settings and process
