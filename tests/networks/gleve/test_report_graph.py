"""The lesion semantic graph of 000 §2.2 built from a parsed report."""
from __future__ import annotations

import math

import pytest
import torch

from lib.networks.gleve.report_graph import (
    NodeType,
    Rel,
    build_lesion_graph,
    lesion_target,
    organ_prior_channels,
    same_organ,
)
from lib.reports.parse import parse_report
from lib.reports.schema import LesionUnit, ellipsoid_volume_ml

REPORT = (
    "Liver: There is an 18 x 15 mm hypodense lesion in segment VII of the liver measuring 35 HU. "
    "A second 9 mm cyst in segment II. "
    "Kidneys: 2.1 cm enhancing mass in the lower pole of the left kidney."
)


@pytest.fixture(scope="module")
def graph():
    return build_lesion_graph(parse_report(REPORT))


def _edges(g):
    return {(int(u), int(v), int(t)) for (u, v), t in zip(g.edge_index.t().tolist(), g.edge_type.tolist())}


def test_nodes(graph):
    texts = graph.node_texts
    assert graph.num_lesions == 3
    assert [int(graph.node_types[i]) for i in graph.lesion_nodes] == [NodeType.LESION] * 3
    assert texts[int(graph.lesion_nodes[0])] == "hypodense lesion in segment VII of the liver, 18 x 15 mm, 35 HU"
    organs = [t for t, k in zip(texts, graph.node_types.tolist()) if k == NodeType.ORGAN]
    assert organs == ["liver", "left kidney"]  # one node per organ, shared by its lesions
    sub = {t for t, k in zip(texts, graph.node_types.tolist()) if k == NodeType.SUB_LOCATION}
    assert sub == {"segment VII of the liver", "segment II of the liver", "lower pole of the left kidney"}
    attrs = [t for t, k in zip(texts, graph.node_types.tolist()) if k == NodeType.ATTRIBUTE]
    assert {"18 x 15 mm", "hypodense, 35 HU", "9 mm", "cyst", "enhancing", "mass", "21 mm"} <= set(attrs)


def test_edges(graph):
    e = _edges(graph)
    texts = graph.node_texts
    liver, kidney = texts.index("liver"), texts.index("left kidney")
    l0, l1, l2 = (int(i) for i in graph.lesion_nodes)
    assert graph.edge_index.shape == (2, graph.edge_type.numel())
    assert int(graph.edge_index.max()) < graph.num_nodes
    # organ attribution, both directions with their own relation types
    for les, org in ((l0, liver), (l1, liver), (l2, kidney)):
        assert (les, org, Rel.LESION_TO_ORGAN) in e and (org, les, Rel.ORGAN_TO_LESION) in e
    # containment organ <-> sub-location, lesion <-> sub-location, lesion <-> attribute
    seg7 = texts.index("segment VII of the liver")
    assert (liver, seg7, Rel.ORGAN_CONTAINS) in e and (seg7, liver, Rel.PART_OF_ORGAN) in e
    assert (l0, seg7, Rel.LESION_TO_SUBLOC) in e and (seg7, l0, Rel.SUBLOC_TO_LESION) in e
    size0 = texts.index("18 x 15 mm")
    assert (l0, size0, Rel.LESION_TO_ATTR) in e and (size0, l0, Rel.ATTR_TO_LESION) in e
    # intra-organ relation only between the two liver lesions
    assert (l0, l1, Rel.SAME_ORGAN) in e and (l1, l0, Rel.SAME_ORGAN) in e
    assert not any(t == Rel.SAME_ORGAN and {u, v} & {l2} for u, v, t in e)
    # a self loop on every node
    assert all((v, v, Rel.SELF) in e for v in range(graph.num_nodes))


def test_lesion_targets(graph):
    t0, t1, t2 = graph.lesions
    assert t0.organ == "liver" and t0.hu == 35.0 and t0.hu_interval() == (35.0, 35.0)
    assert math.isclose(t0.volume_ml, ellipsoid_volume_ml([18.0, 15.0]))
    assert t1.density == "cystic" and t1.hu_range == (-10.0, 20.0) and not t1.hu_relative
    assert t2.organ == "kidney_left" and t2.hu is None and t2.hu_interval() is None and t2.has_volume


def test_relative_density_interval():
    t = lesion_target(LesionUnit(organ="pancreas", density="hypodense", size_mm=[20.0]))
    assert t.hu_relative and t.hu_interval() is None  # needs the organ's mean HU
    assert t.hu_interval(100.0) == (-100.0, 85.0)


def test_sentence_text_option_and_empty_report():
    g = build_lesion_graph(parse_report(REPORT), lesion_text="sentence")
    assert g.node_texts[int(g.lesion_nodes[0])].startswith("Liver: There is an 18 x 15 mm")
    empty = build_lesion_graph(parse_report("The liver is unremarkable. No renal mass."))
    assert empty.num_lesions == 0 and empty.num_nodes == 0 and empty.edge_index.shape == (2, 0)
    with pytest.raises(ValueError):
        build_lesion_graph([], lesion_text="words")


def test_embed_fills_node_embeddings(graph):
    from lib.networks.text_encoder import build_text_encoder

    g = build_lesion_graph(parse_report(REPORT)).embed(build_text_encoder({"backend": "hash", "dim": 16}))
    assert g.node_embeddings.shape == (g.num_nodes, 16) and g.node_embeddings.dtype == torch.float32


def test_organ_channels():
    names = ["liver", "spleen", "kidney_right", "kidney_left", "pancreas"]
    assert organ_prior_channels("liver", names) == [0]
    assert organ_prior_channels("kidney", names) == [2, 3]
    assert organ_prior_channels("kidney_left", names) == [3]
    assert organ_prior_channels("kidney_left", ["liver", "kidney"]) == [1]
    assert organ_prior_channels("lung_left", names) == []
    assert same_organ("kidney", "kidney_left") and not same_organ("kidney_left", "kidney_right")
