"""Report sentence -> set of boxes: the targets of MedGrounder's two training stages (003 §3.4).

**Stage 1 (weak anatomy boxes, the GMPG-ImaGenome recipe, §3.4.1).** Chest ImaGenome links each
sentence to every anatomical region it touches, specific and broad alike ("right lower lung zone"
*and* "right lung"). Here the same noisy links are made from the anatomy structure map (the
anatomy task's output in the app, ``labels/organs`` in tests) and the parsed sentence: its Reg2RG
region (parser), then the structures, sides and lung zones its words name, each with all its
ancestors. The paper's three clean-up steps are then applied as rules (it used an LLM):

1. keep only the most specific regions: a region is dropped when one of its descendants is linked;
2. sentences with only negative findings, and normal-anatomy statements, get no box;
3. non-diagnostic sentences (headers, technique, history, recommendations) are kept as zero-box cases.

"Bilateral lower lobe opacities" -> right and left lower lung zones: two boxes.

**Stage 2 (finding boxes, §3.4.2).** The study's truth links each finding sentence to its
lesions/findings; each linked instance's box comes from the instance map (``labels/final`` or
``truth/<id>_lesions``), else from the truth's ``box_vox``. Negative, normal and non-diagnostic
sentences have no box.

Sentences are always the parser's (``lib.reports.parse_report``), so training sees exactly the
split the infer task makes; truth sentences are aligned to them by character span. Boxes are
voxel corner boxes of the structure map's grid, upper corner exclusive (``lib.metrics.boxes``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

from lib.anatomy.labels import ANATOMY_STRUCTURES
from lib.metrics.boxes import instance_boxes, mask_to_box
from lib.reports.schema import ParsedReport, Sentence, SentenceKind

#: Anatomy node -> parent (None: a root, i.e. a whole Reg2RG region). The tree the clean-up walks.
ANATOMY_TREE: dict[str, Optional[str]] = {
    "lungs": None,
    "right lung": "lungs",
    "left lung": "lungs",
    **{f"{s} {z} lung zone": f"{s} lung" for s in ("right", "left") for z in ("upper", "mid", "lower")},
    "pleura": None,
    "right pleura": "pleura",
    "left pleura": "pleura",
    "heart": None,
    "mediastinum": None,
    "aorta": "mediastinum",
    "trachea and bronchi": None,
    "esophagus": None,
    "thyroid": None,
    "right thyroid lobe": "thyroid",
    "left thyroid lobe": "thyroid",
    "breasts": None,
    "right breast": "breasts",
    "left breast": "breasts",
    "bones": None,
    "spine": "bones",
    "ribs": "bones",
    "upper abdomen": None,
    "liver": "upper abdomen",
    "gallbladder": "upper abdomen",
    "spleen": "upper abdomen",
    "stomach": "upper abdomen",
    "pancreas": "upper abdomen",
    "kidneys": "upper abdomen",
    "right kidney": "kidneys",
    "left kidney": "kidneys",
}

#: Reg2RG region (``Sentence.region``) -> root node.
REGION_ROOT: dict[str, str] = {
    "lung": "lungs",
    "pleura": "pleura",
    "heart": "heart",
    "mediastinum": "mediastinum",
    "trachea and bronchi": "trachea and bronchi",
    "esophagus": "esophagus",
    "thyroid": "thyroid",
    "breast": "breasts",
    "bone": "bones",
    "abdomen": "upper abdomen",
}

#: Node -> structure keys (ANATOMY_STRUCTURES) whose union it is (sided / zoned nodes are cut from these).
NODE_STRUCTURES: dict[str, tuple[str, ...]] = {
    "lungs": ("lung_right", "lung_left"),
    "right lung": ("lung_right",),
    "left lung": ("lung_left",),
    "pleura": ("pleura",),
    "heart": ("heart",),
    "mediastinum": ("mediastinum", "aorta"),
    "aorta": ("aorta",),
    "trachea and bronchi": ("trachea_bronchi",),
    "esophagus": ("esophagus",),
    "thyroid": ("thyroid",),
    "breasts": ("breast",),
    "bones": ("vertebra", "rib_cage"),
    "spine": ("vertebra",),
    "ribs": ("rib_cage",),
    "upper abdomen": ("liver", "spleen", "kidney_right", "kidney_left", "pancreas", "gallbladder", "stomach"),
    "liver": ("liver",),
    "gallbladder": ("gallbladder",),
    "spleen": ("spleen",),
    "stomach": ("stomach",),
    "pancreas": ("pancreas",),
    "kidneys": ("kidney_right", "kidney_left"),
    "right kidney": ("kidney_right",),
    "left kidney": ("kidney_left",),
}
#: Nodes cut by side from their parent's structures (the midline is the spine's / trachea's centre).
SIDED = {"right pleura": "pleura", "left pleura": "pleura", "right thyroid lobe": "thyroid", "left thyroid lobe": "thyroid",
         "right breast": "breasts", "left breast": "breasts"}

# --------------------------------------------------------------------------- words -> nodes
_RX = lambda p: re.compile(rf"\b(?:{p})\b", re.IGNORECASE)  # noqa: E731
_BILATERAL = _RX(r"bilateral\w*|both|bibasilar|bibasal|biapical")
_RIGHT, _LEFT = _RX(r"right"), _RX(r"left")
_ZONES = [("upper", _RX(r"upper|apex|apices|apical|biapical")), ("mid", _RX(r"middle|mid|lingula\w*|perihilar")),
          ("lower", _RX(r"lower|bases?|basilar|basal|bibasilar|bibasal"))]
_SIDED_NAME = {"pleura": "{side} pleura", "thyroid": "{side} thyroid lobe", "breasts": "{side} breast"}
#: (node of a structure inside a region, pattern), checked in the region given by the parser.
_KEYWORD_NODES: dict[str, list[tuple[str, re.Pattern]]] = {
    "mediastinum": [("aorta", _RX(r"aort\w*"))],
    "bones": [("spine", _RX(r"spine|spinal|vertebra\w*|thoracic spine|osteophyt\w*|degenerative")), ("ribs", _RX(r"ribs?|sternum|sternal|clavic\w*"))],
    "upper abdomen": [("liver", _RX(r"liver|hepatic")), ("gallbladder", _RX(r"gallbladder")), ("spleen", _RX(r"spleen|splenic")),
                      ("stomach", _RX(r"stomach|gastric")), ("pancreas", _RX(r"pancrea\w*")), ("kidneys", _RX(r"kidneys?|renal"))],
}


def sentence_sides(text: str) -> tuple[str, ...]:
    """('right',), ('left',) or ('right', 'left') for bilateral / both; () when no side is said."""
    if _BILATERAL.search(text) or (_RIGHT.search(text) and _LEFT.search(text)):
        return ("right", "left")
    if _RIGHT.search(text):
        return ("right",)
    if _LEFT.search(text):
        return ("left",)
    return ()


def sentence_zones(text: str) -> tuple[str, ...]:
    return tuple(z for z, rx in _ZONES if rx.search(text))


def linked_nodes(region: Optional[str], text: str) -> list[str]:
    """The raw (noisy, ImaGenome-style) anatomy links of a sentence: every node it touches, with
    all ancestors. Empty when the sentence names no region."""
    root = REGION_ROOT.get(region or "")
    if root is None:
        return []
    leaves = [root]
    sides = sentence_sides(text)
    if root == "lungs":
        zones = sentence_zones(text)
        if zones and not sides:
            sides = ("right", "left")  # "upper lobes", "bases", "upper lobe predominant": both lungs
        if sides:
            leaves = [f"{s} {z} lung zone" for s in sides for z in zones] or [f"{s} lung" for s in sides]
    elif root in _SIDED_NAME and sides:
        leaves = [_SIDED_NAME[root].format(side=s) for s in sides]
    else:
        found = [node for node, rx in _KEYWORD_NODES.get(root, []) if rx.search(text)]
        if "kidneys" in found and sides:
            found = [n for n in found if n != "kidneys"] + [f"{s} kidney" for s in sides]
        leaves = found or leaves
    out: list[str] = []
    for leaf in leaves:
        node: Optional[str] = leaf
        while node is not None:
            if node not in out:
                out.append(node)
            node = ANATOMY_TREE[node]
    return out


def most_specific(nodes: Iterable[str]) -> list[str]:
    """Clean-up step 1: drop every node that is an ancestor of another linked node (order kept)."""
    nodes = list(dict.fromkeys(nodes))
    ancestors: set[str] = set()
    for n in nodes:
        p = ANATOMY_TREE.get(n)
        while p is not None:
            ancestors.add(p)
            p = ANATOMY_TREE.get(p)
    return [n for n in nodes if n not in ancestors]


# --------------------------------------------------------------------------- nodes -> boxes
class AnatomyBoxes:
    """Masks and boxes of anatomy nodes on one structure map (cached)."""

    def __init__(self, structure_map: np.ndarray, structures: Optional[Mapping[str, int]] = None):
        self.lab = np.asarray(structure_map)
        self.ids = dict(structures or ANATOMY_STRUCTURES)
        self._boxes: dict[str, Optional[np.ndarray]] = {}
        self._midline: Optional[float] = None

    def _union(self, keys: Sequence[str]) -> np.ndarray:
        return np.isin(self.lab, [self.ids[k] for k in keys if k in self.ids])

    @property
    def midline(self) -> float:
        """x index of the body's midline (array x runs to the patient's left, LPS): spine, else airway, else centre."""
        if self._midline is None:
            self._midline = (self.lab.shape[0] - 1) / 2.0
            for key in ("vertebra", "trachea_bronchi", "esophagus"):
                xs = np.nonzero(self.lab == self.ids.get(key, -1))[0]
                if xs.size:
                    self._midline = float(np.median(xs))
                    break
        return self._midline

    def mask(self, node: str) -> np.ndarray:
        if node in NODE_STRUCTURES:
            return self._union(NODE_STRUCTURES[node])
        side = node.split(" ", 1)[0]
        if node in SIDED:
            m = self.mask(SIDED[node])
            x = np.arange(self.lab.shape[0])[:, None, None]
            return m & ((x < self.midline) if side == "right" else (x >= self.midline))
        zone = re.fullmatch(r"(right|left) (upper|mid|lower) lung zone", node)
        if zone:
            lung = self.mask(f"{zone.group(1)} lung")
            zs = np.nonzero(lung.any(axis=(0, 1)))[0]
            if not zs.size:
                return lung
            lo, hi = int(zs[0]), int(zs[-1]) + 1
            cut = np.linspace(lo, hi, 4).round().astype(int)  # thirds of the lung's height; z runs superior
            k = {"lower": 0, "mid": 1, "upper": 2}[zone.group(2)]
            out = np.zeros_like(lung)
            out[:, :, cut[k] : cut[k + 1]] = lung[:, :, cut[k] : cut[k + 1]]
            return out
        raise KeyError(f"unknown anatomy node {node!r}")

    def box(self, node: str) -> Optional[np.ndarray]:
        """Voxel corner box (upper exclusive) of the node, None when it is absent from the map."""
        if node not in self._boxes:
            self._boxes[node] = mask_to_box(self.mask(node))
        return self._boxes[node]


# --------------------------------------------------------------------------- targets
@dataclass
class SentenceTarget:
    """One sentence and its ground-truth box set (0, 1 or many), voxel corner boxes."""

    index: int
    text: str
    span: tuple[int, int]
    kind: str
    boxes: np.ndarray  # (M, 2 * ndim)
    names: list[str] = field(default_factory=list)  # anatomy node or finding id of each box

    @property
    def n_boxes(self) -> int:
        return int(len(self.boxes))


def _empty(nd: int = 3) -> np.ndarray:
    return np.zeros((0, 2 * nd), dtype=float)


def _stack(boxes: list[np.ndarray], nd: int) -> np.ndarray:
    return np.asarray(boxes, dtype=float).reshape(-1, 2 * nd) if boxes else _empty(nd)


def anatomy_targets(parsed: ParsedReport, structure_map: np.ndarray, structures: Optional[Mapping[str, int]] = None) -> list[SentenceTarget]:
    """Stage-1 targets: each sentence -> boxes of its most specific linked anatomy (rules above)."""
    anat = AnatomyBoxes(structure_map, structures)
    return [anatomy_target(s, anat) for s in parsed.sentences]


def anatomy_target(sentence: Sentence, anat: AnatomyBoxes) -> SentenceTarget:
    nd = anat.lab.ndim
    kind = SentenceKind(sentence.kind).value
    names, boxes = [], []
    if kind == SentenceKind.FINDING.value:  # clean-up 2 and 3: negative / normal / non-diagnostic -> no box
        for node in most_specific(linked_nodes(sentence.region, sentence.text)):
            b = anat.box(node)
            if b is not None:
                names.append(node)
                boxes.append(b)
    return SentenceTarget(sentence.index, sentence.text, tuple(sentence.span), kind, _stack(boxes, nd), names)


def _overlap(a: Sequence[int], b: Sequence[int]) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


def finding_targets(parsed: ParsedReport, truth: Mapping, instances: Optional[np.ndarray] = None) -> list[SentenceTarget]:
    """Stage-2 targets: finding sentences -> the boxes of the lesions/findings the truth links to them.

    Boxes from ``instances`` (instance map, ids = truth lesion/finding ids) when given, else the
    truth's ``box_vox`` (inclusive corners). Linked ids with no voxel are left out.
    """
    nd = 3
    boxes_by_id: dict[int, np.ndarray] = {}
    if instances is not None:
        ids, bxs = instance_boxes(instances)
        boxes_by_id = {int(i): b for i, b in zip(ids, bxs)}
        nd = np.asarray(instances).ndim
    else:
        for f in list(truth.get("findings", [])) + list(truth.get("lesions", [])):
            if f.get("box_vox"):
                lo, hi = f["box_vox"]
                boxes_by_id[int(f["id"])] = np.asarray(list(lo) + [v + 1 for v in hi], dtype=float)
    truth_sents = [t for t in truth.get("sentences", []) if t.get("span")]
    out = []
    for s in parsed.sentences:
        kind = SentenceKind(s.kind).value
        names, boxes = [], []
        if kind == SentenceKind.FINDING.value and truth_sents:
            best = max(truth_sents, key=lambda t: _overlap(t["span"], s.span))
            if _overlap(best["span"], s.span) > 0:
                for fid in best.get("lesion_ids", []):
                    if int(fid) in boxes_by_id:
                        names.append(f"finding {int(fid)}")
                        boxes.append(boxes_by_id[int(fid)])
        out.append(SentenceTarget(s.index, s.text, tuple(s.span), kind, _stack(boxes, nd), names))
    return out


# --------------------------------------------------------------------------- stage-1 phrase augmentation
_FINDING_NOUNS = {
    "lungs": [("opacity", "opacities"), ("consolidation", "consolidation"), ("atelectasis", "atelectasis"), ("nodule", "nodules"), ("airspace disease", "airspace disease")],
    "pleura": [("pleural effusion", "pleural effusions"), ("pleural thickening", "pleural thickening")],
}
_ZONE_WORDS = {"upper": ["upper lobe", "apical"], "mid": ["middle lobe", "perihilar"], "lower": ["lower lobe", "basilar"]}
#: The finding nouns the phrases are made of (singular forms).
PHRASE_NOUNS: tuple[str, ...] = tuple(sg for pairs in _FINDING_NOUNS.values() for sg, _ in pairs)


def supervised_phrase_nouns(texts: Iterable[str]) -> set[str]:
    """The phrase nouns (singular) that occur, singular or plural, in ``texts``.

    Why: in stage 2 the groundable report sentences teach finding boxes for their nouns ("Plate-like
    atelectasis in the left lower lobe." -> the atelectasis); a replayed stage-1 phrase with the same
    noun ("Left basilar atelectasis." -> the left lower lung zone) would teach the opposite answer.
    Replay keeps only the nouns stage 2 never grounds (e.g. "opacities")."""
    text = " ".join(texts)
    return {sg for pairs in _FINDING_NOUNS.values() for sg, pl in pairs if _RX(f"{re.escape(sg)}|{re.escape(pl)}").search(text)}


def anatomy_phrases(rng: np.random.Generator, anat: AnatomyBoxes, n: int, exclude_nouns: Iterable[str] = ()) -> list[SentenceTarget]:
    """Short sentence -> anatomy pairs drawn at random (sides, zones, plural and negated forms),
    each labelled by the same rules as the report sentences (:func:`linked_nodes` + clean-up).

    Why: the synthetic reports word lung and pleural findings in few ways and never say e.g.
    "bilateral lower lobe opacities"; Chest ImaGenome's millions of sentences are far more varied.
    These phrases give stage 1 that variety (side / zone / multiplicity), not new anatomy.
    ``exclude_nouns`` (singular forms, :data:`PHRASE_NOUNS`) are never drawn (stage-2 replay,
    :func:`supervised_phrase_nouns`); with none excluded the draws are stage 1's."""
    out = []
    nd = anat.lab.ndim
    excluded = set(exclude_nouns)
    allowed = {root: [p for p in pairs if p[0] not in excluded] for root, pairs in _FINDING_NOUNS.items()}
    if not any(allowed.values()):
        return out
    for i in range(int(n)):
        root = "lungs" if rng.random() < 0.7 else "pleura"
        if not allowed[root]:
            root = "pleura" if root == "lungs" else "lungs"
        singular, plural = allowed[root][int(rng.integers(len(allowed[root])))]
        side = str(rng.choice(["right", "left", "bilateral"]))
        noun = plural if side == "bilateral" else singular
        if root == "lungs":
            zone = str(rng.choice(list(_ZONE_WORDS)))
            zword = str(rng.choice(_ZONE_WORDS[zone]))
            text = f"{side.capitalize()} {zword} {noun}."
        else:
            text = f"{side.capitalize()} {noun}."
        negated = rng.random() < 0.25
        if negated:
            text = f"No {noun if root == 'pleura' else singular}."
        kind = SentenceKind.NEGATIVE.value if negated else SentenceKind.FINDING.value
        names, boxes = [], []
        if not negated:
            region = "lung" if root == "lungs" else "pleura"
            for node in most_specific(linked_nodes(region, text)):
                b = anat.box(node)
                if b is not None:
                    names.append(node)
                    boxes.append(b)
        out.append(SentenceTarget(-1 - i, text, (0, len(text)), kind, _stack(boxes, nd), names))
    return out
