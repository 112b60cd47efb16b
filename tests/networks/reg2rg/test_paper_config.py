"""The ``paper`` variant (004 §4.2) builds at full size on the meta device: shapes and parameter
counts are checked without allocating the 6.6 B parameters (a GPU run loads LLaMA2-7B from a folder)."""
from __future__ import annotations

import pytest
import torch

from lib.networks.reg2rg import Reg2RG, Reg2RGConfig
from lib.networks.reg2rg.config import LLAMA2_7B_SHAPE

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def paper_model(tokenizer):
    with torch.device("meta"):
        return Reg2RG(Reg2RGConfig.paper(lm_config=LLAMA2_7B_SHAPE), tokenizer)


def test_paper_sizes_follow_004(paper_model):
    cfg = paper_model.config
    assert cfg.image_size == (256, 256, 64) and cfg.joint_regions  # one prompt with every region, as 004
    assert not Reg2RGConfig.tiny().joint_regions
    assert all(p.device.type == "meta" for p in paper_model.parameters())  # nothing allocated
    assert paper_model.hidden == 4096 and len(paper_model.base_lm.model.layers) == 32
    assert len(paper_model.visual.encoder.vit.blocks) == 12 and len(paper_model.visual.adapter.layers) == 6
    assert len(paper_model.visual.geometry.vit.blocks) == 3
    total = sum(p.numel() for p in paper_model.parameters())
    assert 6.5e9 < total < 6.9e9  # LLaMA2-7B (with this tokenizer's vocabulary) + ViT3D + Perceiver + mask ViT


def test_paper_lora_is_on_q_and_v_only(paper_model):
    cfg = paper_model.config
    lora = {n: p for n, p in paper_model.lm.named_parameters() if p.requires_grad}
    assert lora and all("lora_" in n and ("q_proj" in n or "v_proj" in n) for n in lora)
    # r x (in + out) per adapted projection, q and v in each of the 32 layers
    assert sum(p.numel() for p in lora.values()) == 32 * 2 * cfg.lora_r * (4096 + 4096)


def test_paper_visual_tokens_have_the_llm_width(paper_model):
    with torch.device("meta"):
        glb = paper_model.visual.texture(torch.zeros(1, 1, 256, 256, 64))
        reg = paper_model.visual.region_tokens(torch.zeros(3, 1, 256, 256, 64), torch.zeros(3, 1, 256, 256, 64))
    assert tuple(glb.shape) == (1, 32, 4096)  # 32 global embeddings
    assert tuple(reg.shape) == (3, 33, 4096)  # 32 texture + 1 geometry embedding per region (004 eq. 5)
