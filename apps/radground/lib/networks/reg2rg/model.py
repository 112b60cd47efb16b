"""Reg2RG (004): global + local (texture, geometry) visual embeddings in an LLM prompt.

The prompt text holds ``<image>`` once and ``<region_i>`` once per referring region; each
placeholder token is replaced by its visual embeddings (32 global tokens; 32 texture + 1
geometry tokens per region, 004 eq. 5) before the LM runs, so the LM reads
[text ..., visual ..., text ...] as one sequence (the MyEmbedding idea of the authors' code, done
here by splicing embeddings). Training minimises the LM loss on the region reports (eq. 9);
prompt and placeholder positions carry label -100.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from .config import Reg2RGConfig
from .language import build_base_lm, with_lora
from .tokenizer import placeholder_ids
from .visual import VisualFeatures

IGNORE_INDEX = -100


class Reg2RG(nn.Module):
    def __init__(self, config: Reg2RGConfig, tokenizer: PreTrainedTokenizerBase):
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.image_token_id, self.region_token_ids = placeholder_ids(tokenizer, config.max_regions)
        base = build_base_lm(config, len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
        self.lm = with_lora(base, config)
        self.hidden = base.get_input_embeddings().weight.shape[1]
        self.visual = VisualFeatures(config, self.hidden)

    # ------------------------------------------------------------------ pieces
    @property
    def base_lm(self):
        """The LM under the adapters (peft's base model)."""
        return self.lm.get_base_model()

    def encode(
        self, global_volume: Optional[torch.Tensor], crops: Optional[torch.Tensor], masks: Optional[torch.Tensor]
    ) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """(32, H) global tokens (or None) and (R, region_tokens, H) region tokens (or None)."""
        cfg = self.config
        glb = self.visual.texture(global_volume)[0] if (cfg.use_global and global_volume is not None) else None
        reg = self.visual.region_tokens(crops, masks) if (cfg.uses_local and crops is not None and len(crops)) else None
        return self.to_embedding_scale(glb), self.to_embedding_scale(reg)

    def to_embedding_scale(self, tokens: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """Visual tokens rescaled to the mean norm of the LM's token embeddings.

        004's adapter + FC are trained to map into LLaMA's embedding space; here the encoders start
        from scratch and their raw outputs were ~30x the norm of the small LM's token embeddings,
        which swamps what attention writes into those positions. Direction is learned, scale is the LM's.
        """
        if tokens is None:
            return None
        scale = self.lm.get_input_embeddings().weight.detach().norm(dim=-1).mean()
        return tokens * (scale / tokens.norm(dim=-1, keepdim=True).clamp_min(1e-6))

    def splice(
        self, input_ids: torch.Tensor, glb: Optional[torch.Tensor], reg: Optional[torch.Tensor], labels: Optional[torch.Tensor] = None
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """1-D token ids -> (L', H) embeddings with every placeholder replaced by its visual tokens.

        ``labels`` (same length as ``input_ids``) are expanded alongside, -100 on visual positions.
        A placeholder without features (e.g. ``<region_3>`` with only 2 regions given) is an error:
        it would silently feed the LM an untrained token embedding.
        """
        emb = self.lm.get_input_embeddings()(input_ids)
        region_ids = {tid: i for i, tid in enumerate(self.region_token_ids)}
        pieces, lab_pieces, start = [], [], 0
        for pos in range(input_ids.shape[0]):
            tid = int(input_ids[pos])
            if tid == self.image_token_id:
                if glb is None:
                    raise ValueError("the prompt has <image> but no global features were given")
                vis = glb
            elif tid in region_ids:
                i = region_ids[tid]
                if reg is None or i >= reg.shape[0]:
                    raise ValueError(f"the prompt has <region_{i}> but only {0 if reg is None else reg.shape[0]} regions were given")
                vis = reg[i]
            else:
                continue
            pieces += [emb[start:pos], vis.to(emb.dtype)]
            if labels is not None:
                lab_pieces += [labels[start:pos], labels.new_full((vis.shape[0],), IGNORE_INDEX)]
            start = pos + 1
        pieces.append(emb[start:])
        if labels is not None:
            lab_pieces.append(labels[start:])
        return torch.cat(pieces, 0), (torch.cat(lab_pieces, 0) if labels is not None else None)

    # ------------------------------------------------------------------ training / inference
    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        global_volume: Optional[torch.Tensor] = None,
        crops: Optional[torch.Tensor] = None,
        masks: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """LM loss (004 eq. 9) of one study: 1-D ``input_ids`` = prompt + target, ``labels`` -100 on the prompt."""
        glb, reg = self.encode(global_volume, crops, masks)
        embeds, labs = self.splice(input_ids, glb, reg, labels)
        out = self.lm(inputs_embeds=embeds[None], labels=labs[None])
        return out.loss

    def forward_many(
        self,
        examples: list[tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]],
        glb: Optional[torch.Tensor],
        target_weights: Optional[list[torch.Tensor]] = None,
    ) -> torch.Tensor:
        """LM loss over several prompts of one study at once (one per region when ``joint_regions`` is
        off): each (input ids, labels, region tokens) is spliced, right-padded and run as one batch.

        ``target_weights`` (one per example, a weight per target token, i.e. per label that is not
        -100): the loss is then the weighted mean of the token losses (all weights 1 = the plain loss).
        """
        embs, labs = zip(*(self.splice(ids, glb, reg, lab) for ids, lab, reg in examples))
        n = max(e.shape[0] for e in embs)
        emb = torch.zeros(len(embs), n, embs[0].shape[1], dtype=embs[0].dtype, device=embs[0].device)
        lab = torch.full((len(embs), n), IGNORE_INDEX, dtype=torch.long, device=embs[0].device)
        att = torch.zeros(len(embs), n, dtype=torch.long, device=embs[0].device)
        for i, (e, l) in enumerate(zip(embs, labs)):
            emb[i, : e.shape[0]], lab[i, : l.shape[0]], att[i, : e.shape[0]] = e, l, 1
        if target_weights is None:
            return self.lm(inputs_embeds=emb, attention_mask=att, labels=lab).loss
        logits = self.lm(inputs_embeds=emb, attention_mask=att).logits
        weight = torch.zeros(lab.shape, dtype=torch.float32, device=lab.device)
        for i, w in enumerate(target_weights):
            pos = (lab[i] != IGNORE_INDEX).nonzero().flatten()
            if pos.numel() != w.numel():
                raise ValueError(f"{w.numel()} target weights for {pos.numel()} target tokens")
            weight[i, pos] = w.to(weight.device, torch.float32)
        ce = nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]).float(), lab[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX, reduction="none"
        ).view(lab.shape[0], -1)
        w = weight[:, 1:]
        return (ce * w).sum() / w.sum().clamp_min(1e-6)

    @torch.no_grad()
    def generate(
        self,
        prompt_ids: torch.Tensor,
        global_volume: Optional[torch.Tensor] = None,
        crops: Optional[torch.Tensor] = None,
        masks: Optional[torch.Tensor] = None,
        max_new_tokens: int = 512,
    ) -> list[int]:
        """Greedy decoding of the region reports after the prompt; returns the new token ids."""
        glb, reg = self.encode(global_volume, crops, masks)
        return self.generate_from(prompt_ids, glb, reg, max_new_tokens)

    @torch.no_grad()
    def generate_from(self, prompt_ids: torch.Tensor, glb: Optional[torch.Tensor], reg: Optional[torch.Tensor], max_new_tokens: int = 512) -> list[int]:
        """Greedy decoding after a prompt whose visual tokens are already encoded."""
        embeds, _ = self.splice(prompt_ids, glb, reg)
        out = self.lm.generate(
            inputs_embeds=embeds[None],
            attention_mask=torch.ones(1, embeds.shape[0], dtype=torch.long, device=embeds.device),
            max_new_tokens=int(max_new_tokens),
            do_sample=False,
            eos_token_id=self.tokenizer.eos_token_id,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        ids = out[0].tolist()
        eos = self.tokenizer.eos_token_id
        return ids[: ids.index(eos)] if eos in ids else ids

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_state_dict(self) -> dict[str, torch.Tensor]:
        """What a checkpoint must hold: everything, except the frozen base weights of a local LLM folder
        (those are read from the folder again; a 7B copy per checkpoint would be absurd)."""
        state = self.state_dict()
        if self.config.lm_path and not self.config.train_lm_base:
            trainable = {n for n, p in self.named_parameters() if p.requires_grad}
            state = {k: v for k, v in state.items() if not k.startswith("lm.") or k in trainable}
        return {k: v.detach().cpu() for k, v in state.items()}
