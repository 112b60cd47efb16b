"""GLeVE (000 §2): report lesions -> per-lesion masks in the CT, as one ``nn.Module``.

Pipeline for one study (batch size 1, as in the paper):

1. LeQu (§2.2): node texts -> frozen text encoder -> relation-aware graph transformer (eq. 1)
   -> lesion summaries z_i -> QueryBank -> M queries per lesion.
2. AnVer (§2.3): visual encoder -> F; organ-prior FiLM (eq. 2) -> F~; cosine response S_i (eq. 3);
   Otsu threshold + 3D components -> Top-K_p candidates; region verification (eq. 4) -> P_i*.
3. OcRe (§2.4): octree autoregressive refinement (eq. 6) of P_i* -> refined mask.

Gradients: everything but the candidate extraction is differentiable. The coarse mask the octree
starts from is the chosen component weighted by its response, Y^0 = 1[P*] sigma((S_i - t) / T)
(t = the component threshold), so the losses on the refined mask reach the queries (and with them
the graph transformer and the text-side parameters) as well as F~, the FiLM and the backbone;
L_uni reaches W_s, eta, z and F~ through the verification scores.

Training with masks (teacher forcing, not stated in the paper): when ``target_masks`` are given
and ``config.teacher_forcing`` is on, the candidate refined for lesion i is the one overlapping its
annotated mask best (if none does, the mask's bounding box is added as a candidate), so L_seg
always supervises the right region; the verification scores are still computed on all candidates.
At inference the refined candidate is argmax_k s_i^(k).

Ablations of 000 Table 2 (config switches, all on by default):
- ``use_lequ=False`` (w/o LeQu): z_i is the lesion description's own text embedding projected to d,
  no graph reasoning over organs, attributes or the other lesions;
- ``use_anver=False`` (w/o AnVer): no organ-prior FiLM, candidates searched in the whole volume,
  no region verification: the component with the highest mean response is refined;
- ``use_ocre=False`` (w/o OcRe): no octree refinement; the chosen candidate's soft coarse mask
  Y^0 (as logits (S_i - t) / T inside the candidate) is the output.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping, Optional, Sequence

import torch
from torch import nn

from lib.anatomy.labels import ABDOMEN_ORGANS
from lib.networks.gleve.anatomy_film import OrganFiLM
from lib.networks.gleve.graph_transformer import RelationalGraphEncoder, lesion_summaries
from lib.networks.gleve.losses import GLeVELoss, LossWeights
from lib.networks.gleve.octree_refine import OctreeRefiner, RootCube
from lib.networks.gleve.proposals import Candidate, box_candidate, extract_candidates, response_map
from lib.networks.gleve.query_bank import QueryBank
from lib.networks.gleve.report_graph import NUM_RELATIONS, LesionGraph, LesionTarget, organ_prior_channels
from lib.networks.gleve.verification import RegionVerifier, VerificationResult, evidence_vectors, masked_pool, organ_mean_hu
from lib.networks.gleve.visual_encoder import build_visual_encoder
from lib.networks.text_encoder import TextEncoder, build_text_encoder


#: Frozen text encoders, one per settings, shared by every GLeVE instance of the process: the infer
#: task deep-copies its network template, and a loaded encoder (tokenizer locks) cannot be copied.
_TEXT_ENCODERS: dict[str, TextEncoder] = {}


@dataclass
class GLeVEConfig:
    """All sizes and constants. ``tiny()`` runs on a CPU; ``paper()`` follows 000 where it speaks."""

    organ_names: tuple[str, ...] = tuple(ABDOMEN_ORGANS)  # K_o channels of the soft organ maps
    text_encoder: dict = field(default_factory=lambda: {"backend": "minilm"})
    text_dim: Optional[int] = 384  # None: ask the encoder (loads it)
    d: int = 64  # graph width d
    d_r: int = 16  # relation embedding width d_r
    graph_layers: int = 2  # L
    ffn_mult: int = 2
    num_queries: int = 4  # M
    channels: int = 16  # C
    visual: dict = field(default_factory=lambda: {"arch": "unet", "unet_channels": (8, 16, 32), "strides": (2, 2), "num_res_units": 1})
    organ_dim: int = 16  # width of the organ embeddings e_k
    top_k: int = 3  # K_p
    threshold: str = "otsu"  # or "mean_std"
    k_std: float = 1.0
    region_min: float = 0.05  # search region: reported organ's soft map >= region_min
    restrict_to_region: bool = True
    min_voxels: int = 2
    rank_by: str = "mean"
    tau: float = 0.5  # eq. 5 temperature (also used by make_loss)
    sigma_hu: float = 20.0  # HU agreement scale of the evidence
    init_temperature: float = 0.05  # T of the soft coarse mask Y^0
    organ_mask_threshold: float = 0.5  # binary M_o from the soft map (L_org, organ mean HU)
    octree_depth: int = 2
    octree_hidden: int = 16
    octree_margin: int = 4
    octree_min_block: int = 4
    octree_max_side: int = 32
    active_eps: float = 0.01
    teacher_forcing: bool = True
    use_lequ: bool = True  # Table 2 ablation switches (see the module docstring)
    use_anver: bool = True
    use_ocre: bool = True
    loss: dict = field(default_factory=dict)  # LossWeights overrides (see make_loss)

    @classmethod
    def tiny(cls, **overrides: Any) -> "GLeVEConfig":
        return cls.from_dict(overrides)

    @classmethod
    def paper(cls, **overrides: Any) -> "GLeVEConfig":
        base = dict(
            d=384,
            d_r=32,
            graph_layers=2,
            ffn_mult=4,
            num_queries=8,
            channels=64,
            visual={"arch": "segresnet", "init_filters": 32, "blocks_down": (1, 2, 2, 4), "blocks_up": (1, 1, 1)},
            organ_dim=64,
            top_k=4,
            min_voxels=8,
            octree_depth=3,
            octree_hidden=64,
            octree_margin=8,
            octree_min_block=8,
            octree_max_side=128,
        )
        base.update(overrides)
        return cls.from_dict(base)

    @classmethod
    def from_dict(cls, d: Optional[Mapping[str, Any]]) -> "GLeVEConfig":
        d = dict(d or {})
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown GLeVE settings: {sorted(unknown)}")
        if "organ_names" in d:
            d["organ_names"] = tuple(d["organ_names"])
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LesionPrediction:
    """Everything GLeVE says about one report lesion."""

    index: int
    target: LesionTarget
    response: torch.Tensor  # (X, Y, Z) S_i
    candidates: list[Candidate]
    verification: Optional[VerificationResult]  # None when there is no candidate
    selected: Optional[int]  # argmax_k s (the inference choice)
    chosen: Optional[int]  # candidate refined (= selected unless teacher-forced)
    refined_logits: Optional[torch.Tensor]  # (X, Y, Z)
    cube: Optional[RootCube]
    organ_mask: Optional[torch.Tensor]  # (X, Y, Z) bool, binary M_o(i)
    organ_mean_hu: Optional[float]
    teacher_forced: bool = False

    @property
    def refined_prob(self) -> Optional[torch.Tensor]:
        return None if self.refined_logits is None else torch.sigmoid(self.refined_logits)


@dataclass
class GLeVEOutput:
    lesions: list[LesionPrediction]
    features: torch.Tensor  # (C, X, Y, Z) F~
    z: torch.Tensor  # (N, d)
    queries: torch.Tensor  # (N, M, C)
    responses: torch.Tensor  # (N, X, Y, Z)
    hu_image: Optional[torch.Tensor]  # (X, Y, Z)
    voxel_ml: float
    outside_logit: float

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.features.shape[1:])  # type: ignore[return-value]

    def refined_logits(self) -> torch.Tensor:
        """(N, X, Y, Z); lesions without a candidate get ``outside_logit`` everywhere."""
        if not self.lesions:
            return self.features.new_zeros((0, *self.shape))
        fill = self.features.new_full(self.shape, self.outside_logit)
        return torch.stack([les.refined_logits if les.refined_logits is not None else fill for les in self.lesions])

    def refined_probs(self) -> torch.Tensor:
        return torch.sigmoid(self.refined_logits())

    def organ_masks(self) -> torch.Tensor:
        """(N, X, Y, Z) binary organ masks M_o(i) (zeros when the organ is not among the maps)."""
        if not self.lesions:
            return self.features.new_zeros((0, *self.shape), dtype=torch.bool)
        empty = torch.zeros(self.shape, dtype=torch.bool, device=self.features.device)
        return torch.stack([les.organ_mask if les.organ_mask is not None else empty for les in self.lesions])

    def label_map(self, threshold: float = 0.5) -> torch.Tensor:
        """(X, Y, Z) long: i + 1 where lesion i's refined probability is highest and above threshold."""
        if not self.lesions:
            return torch.zeros(self.shape, dtype=torch.long, device=self.features.device)
        p = self.refined_probs().detach()
        best, idx = p.max(0)
        return torch.where(best > threshold, idx + 1, torch.zeros_like(idx))


class GLeVE(nn.Module):
    """Graph-guided lesion grounding with proposal verification and octree refinement."""

    def __init__(self, config: GLeVEConfig | Mapping[str, Any] | None = None, text_encoder: Optional[TextEncoder] = None):
        super().__init__()
        cfg = config if isinstance(config, GLeVEConfig) else GLeVEConfig.from_dict(config)
        self.config = cfg
        self._text_encoder = text_encoder  # frozen, deliberately not a submodule
        text_dim = cfg.text_dim if cfg.text_dim is not None else self.text_encoder.dim
        self.graph = RelationalGraphEncoder(text_dim, cfg.d, cfg.d_r, NUM_RELATIONS, cfg.graph_layers, cfg.ffn_mult)
        self.query_bank = QueryBank(cfg.d, cfg.channels, cfg.num_queries)
        vis = dict(cfg.visual)
        self.visual = build_visual_encoder(vis.pop("arch", "unet"), cfg.channels, **vis)
        self.film = OrganFiLM(len(cfg.organ_names), cfg.channels, cfg.organ_dim)
        self.verifier = RegionVerifier(cfg.channels, cfg.d)
        self.refiner = OctreeRefiner(
            cfg.channels,
            hidden=cfg.octree_hidden,
            depth=cfg.octree_depth,
            margin=cfg.octree_margin,
            min_block=cfg.octree_min_block,
            max_side=cfg.octree_max_side,
            active_eps=cfg.active_eps,
        )

    @property
    def text_encoder(self) -> TextEncoder:
        if self._text_encoder is not None:  # given to the constructor
            return self._text_encoder
        key = json.dumps(self.config.text_encoder, sort_keys=True, default=str)
        if key not in _TEXT_ENCODERS:
            _TEXT_ENCODERS[key] = build_text_encoder(self.config.text_encoder)
        return _TEXT_ENCODERS[key]

    def make_loss(self) -> GLeVELoss:
        """The eq. 8 objective with ``config.loss`` and the same tau as the verification."""
        return GLeVELoss(LossWeights.from_dict({"tau": self.config.tau, **self.config.loss}))

    # ------------------------------------------------------------------ LeQu
    def encode_graph(self, graph: LesionGraph) -> torch.Tensor:
        """z (N, d): graph transformer output at the lesion nodes."""
        device = next(self.parameters()).device
        x = graph.node_embeddings if graph.node_embeddings is not None else self.text_encoder.encode(graph.node_texts)
        if x.shape[-1] != self.graph.proj.in_features:
            raise ValueError(f"node embeddings have {x.shape[-1]} dims; this model expects text_dim={self.graph.proj.in_features}")
        x = x.to(device, torch.float32)
        if not self.config.use_lequ:  # w/o LeQu: each description on its own, no relations
            return self.graph.proj(x[graph.lesion_nodes.to(device)])
        h = self.graph(x, graph.edge_index.to(device), graph.edge_type.to(device))
        return lesion_summaries(h, graph.lesion_nodes)

    # ------------------------------------------------------------------ AnVer
    def organ_features(self, image: torch.Tensor, organ_maps: torch.Tensor) -> torch.Tensor:
        """F~ (C, X, Y, Z) from the image (1, 1, X, Y, Z) and soft organ maps (K_o, X, Y, Z)
        (F itself without AnVer)."""
        if not self.config.use_anver:
            return self.visual(image)[0]
        return self.film(self.visual(image), organ_maps.unsqueeze(0).to(image))[0]

    def _organ_prior(self, target: LesionTarget, organ_maps: torch.Tensor) -> Optional[torch.Tensor]:
        ch = organ_prior_channels(target.organ, self.config.organ_names)
        return organ_maps[ch].amax(0) if ch else None

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        image: torch.Tensor,
        organ_maps: torch.Tensor,
        graph: LesionGraph,
        hu_image: Optional[torch.Tensor] = None,
        spacing: Sequence[float] = (1.0, 1.0, 1.0),
        target_masks: Optional[torch.Tensor] = None,
    ) -> GLeVEOutput:
        """Ground every lesion of ``graph``.

        image (1, 1, X, Y, Z) normalised; organ_maps (K_o, X, Y, Z) soft maps M~ in the order of
        ``config.organ_names``; hu_image (X, Y, Z) in HU for the region statistics; spacing in mm;
        target_masks (N, X, Y, Z) per-lesion masks for teacher forcing (training only).
        """
        cfg = self.config
        if image.dim() != 5 or image.shape[0] != 1:
            raise ValueError("GLeVE takes one volume shaped (1, 1, X, Y, Z)")
        device = image.device
        if organ_maps.dim() == 5:
            organ_maps = organ_maps[0]
        organ_maps = organ_maps.to(device, torch.float32)
        if organ_maps.shape[1:] != image.shape[2:]:
            raise ValueError(f"organ maps {tuple(organ_maps.shape[1:])} and image {tuple(image.shape[2:])} differ in size")
        if hu_image is not None:
            hu_image = hu_image.reshape(image.shape[2:]).to(device, torch.float32)
        voxel_ml = math.prod(float(s) for s in spacing) / 1000.0
        feats = self.organ_features(image, organ_maps)
        n = graph.num_lesions
        if n == 0:
            z, queries = feats.new_zeros((0, cfg.d)), feats.new_zeros((0, cfg.num_queries, cfg.channels))
            empty = feats.new_zeros((0, *feats.shape[1:]))
            return GLeVEOutput([], feats, z, queries, empty, hu_image, voxel_ml, self.refiner.outside_logit)
        z = self.encode_graph(graph)
        queries = self.query_bank(z)
        responses = response_map(queries, feats)
        lesions = []
        for i in range(n):
            tm = None if target_masks is None else target_masks[i]
            lesions.append(self._ground_one(i, graph.lesions[i], z[i], responses[i], feats, organ_maps, hu_image, voxel_ml, tm))
        return GLeVEOutput(lesions, feats, z, queries, responses, hu_image, voxel_ml, self.refiner.outside_logit)

    def _ground_one(
        self,
        i: int,
        target: LesionTarget,
        z_i: torch.Tensor,
        s_i: torch.Tensor,
        feats: torch.Tensor,
        organ_maps: torch.Tensor,
        hu_image: Optional[torch.Tensor],
        voxel_ml: float,
        target_mask: Optional[torch.Tensor],
    ) -> LesionPrediction:
        cfg = self.config
        soft = self._organ_prior(target, organ_maps)
        organ_mask = None if soft is None else soft >= cfg.organ_mask_threshold
        mean_hu = organ_mean_hu(hu_image, organ_mask)
        region = None if (soft is None or not cfg.use_anver) else soft >= cfg.region_min
        cands = extract_candidates(
            s_i, cfg.top_k, region, cfg.threshold, cfg.k_std, cfg.min_voxels, cfg.rank_by, cfg.restrict_to_region and cfg.use_anver
        )
        forced: Optional[int] = None
        if target_mask is not None and cfg.teacher_forcing and bool((target_mask > 0.5).any()):
            tm = (target_mask > 0.5).to(device=s_i.device)
            overlaps = [float((c.mask & tm).sum()) for c in cands]
            if overlaps and max(overlaps) > 0:
                dice = [2 * o / (c.size + float(tm.sum())) for o, c in zip(overlaps, cands)]
                forced = int(torch.tensor(dice).argmax())
            else:
                thr = cands[0].threshold if cands else float(s_i.detach().mean())
                extra = box_candidate(tm, s_i, thr)
                if extra is not None:
                    cands.append(extra)
                    forced = len(cands) - 1
        if not cands:
            return LesionPrediction(i, target, s_i, [], None, None, None, None, None, organ_mask, mean_hu)
        ver: Optional[VerificationResult] = None
        selected = 0  # w/o AnVer: candidates come ranked by response
        if cfg.use_anver:
            masks = torch.stack([c.mask for c in cands])
            region_feats = masked_pool(feats, masks)
            xi = evidence_vectors(masks, target, soft, hu_image, voxel_ml, mean_hu, cfg.sigma_hu)
            ver = self.verifier(region_feats, z_i, xi, cfg.tau)
            selected = ver.chosen
        chosen = selected if forced is None else forced
        cand = cands[chosen]
        if not cfg.use_ocre:  # w/o OcRe: the soft coarse mask Y^0 is the answer
            logits = torch.where(cand.mask, (s_i - cand.threshold) / cfg.init_temperature, s_i.new_full((), self.refiner.outside_logit))
            return LesionPrediction(i, target, s_i, cands, ver, selected, chosen, logits, None, organ_mask, mean_hu, forced is not None)
        init = cand.mask.to(s_i.dtype) * torch.sigmoid((s_i - cand.threshold) / cfg.init_temperature)
        oct_out = self.refiner(feats, init, cand.bbox)
        return LesionPrediction(
            i, target, s_i, cands, ver, selected, chosen, oct_out.logits, oct_out.cube, organ_mask, mean_hu, forced is not None
        )
