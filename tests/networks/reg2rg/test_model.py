"""Reg2RG's placeholder splicing, loss, LoRA wiring and generation (004 §3.2-3.3)."""
from __future__ import annotations

import pytest
import torch

from lib.data.region_reports import build_prompt, build_target, encode_example
from lib.networks.reg2rg import IGNORE_INDEX

from .conftest import mini_model


def _inputs(model, n_regions=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    glb = torch.rand(1, 1, *cfg.image_size, generator=g)
    crops = torch.rand(n_regions, 1, *cfg.image_size, generator=g)
    masks = (torch.rand(n_regions, 1, *cfg.mask_size, generator=g) > 0.5).float()
    return glb, crops, masks


def _example(model, names=("lung", "heart", "pleura")):
    reports = {"lung": "The lungs are clear.", "heart": "Cardiomegaly.", "pleura": "No pleural effusion."}
    return encode_example(model.tokenizer, build_prompt(len(names)), build_target(list(names), reports))


def test_placeholders_are_replaced_by_their_visual_embeddings(model):
    ids, labels = _example(model)
    glb_v, crops, masks = _inputs(model)
    glb, reg = model.encode(glb_v, crops, masks)
    cfg = model.config
    assert glb.shape == (cfg.n_visual_tokens, model.hidden)
    assert reg.shape == (3, cfg.n_visual_tokens + 1, model.hidden)
    emb, labs = model.splice(ids, glb, reg, labels)
    n_vis = cfg.n_visual_tokens + 3 * (cfg.n_visual_tokens + 1)
    assert emb.shape[0] == ids.shape[0] - 4 + n_vis and labs.shape[0] == emb.shape[0]
    # each placeholder position now holds exactly its features, in order: <image>, <region_0..2>
    pos = 0
    for tid in ids.tolist():
        if tid == model.image_token_id:
            assert torch.equal(emb[pos : pos + glb.shape[0]], glb) and (labs[pos : pos + glb.shape[0]] == IGNORE_INDEX).all()
            pos += glb.shape[0]
        elif tid in model.region_token_ids:
            i = model.region_token_ids.index(tid)
            assert torch.equal(emb[pos : pos + reg.shape[1]], reg[i])
            pos += reg.shape[1]
        else:
            assert torch.equal(emb[pos], model.lm.get_input_embeddings()(torch.tensor([tid]))[0])
            pos += 1
    assert pos == emb.shape[0]
    # the target keeps its labels
    assert (labs != IGNORE_INDEX).sum() == (labels != IGNORE_INDEX).sum()


def test_prompt_placeholder_without_features_is_an_error(model):
    ids, _ = _example(model)
    glb_v, crops, masks = _inputs(model, n_regions=2)
    glb, reg = model.encode(glb_v, crops, masks)
    with pytest.raises(ValueError, match="region_2"):
        model.splice(ids, glb, reg)
    with pytest.raises(ValueError, match="<image>"):
        model.splice(ids, None, reg)


def test_loss_trains_visual_modules_and_lora_not_the_frozen_base(model):
    ids, labels = _example(model)
    loss = model(ids, labels, *_inputs(model))
    assert torch.isfinite(loss)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_" in n and g is not None and g.abs().sum() > 0 for n, g in grads.items())
    for part in ("visual.encoder", "visual.adapter", "visual.fc", "visual.geometry", "visual.mask_fc"):
        assert any(n.startswith(part) and g is not None and g.abs().sum() > 0 for n, g in grads.items()), part
    frozen = [n for n, p in model.lm.named_parameters() if "lora_" not in n]
    assert frozen and not any(p.requires_grad for n, p in model.lm.named_parameters() if "lora_" not in n)


def test_visual_features_change_the_loss(model):
    """The LM really reads the spliced embeddings: other volumes, another loss."""
    ids, labels = _example(model)
    model.eval()
    with torch.no_grad():
        a = model(ids, labels, *_inputs(model, seed=0))
        b = model(ids, labels, *_inputs(model, seed=1))
        c = model(ids, labels, *_inputs(model, seed=0))
    assert a.item() != b.item() and a.item() == c.item()


def test_glb_only_ablation_has_no_region_tokens():
    model = mini_model(use_texture=False, use_geometry=False)
    assert model.visual.geometry is None and not model.config.uses_local
    ids, labels = encode_example(model.tokenizer, build_prompt(0, use_local=False), "The region 0 is lung: The lungs are clear.")
    assert not set(ids.tolist()) & set(model.region_token_ids)
    glb_v, crops, masks = _inputs(model)
    glb, reg = model.encode(glb_v, crops, masks)
    assert reg is None and glb is not None
    assert torch.isfinite(model(ids, labels, glb_v, crops, masks))


def test_generate_returns_new_tokens_only(model):
    ids, _ = encode_example(model.tokenizer, build_prompt(3))
    out = model.generate(ids, *_inputs(model), max_new_tokens=7)
    assert 0 < len(out) <= 7 and model.tokenizer.eos_token_id not in out
    assert isinstance(model.tokenizer.decode(out, skip_special_tokens=True), str)


def test_local_pretrained_folder_and_adapter_round_trip(tmp_path):
    """A local LLM folder (from_pretrained, no hub) + LoRA; the peft adapter saves and reloads to the same outputs,
    and a Reg2RG checkpoint of such a model leaves the frozen base weights out."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    src = mini_model()
    llm_dir = str(tmp_path / "llm")
    _save_plain_base(src, llm_dir)
    model = mini_model(lm_path=llm_dir)
    for p in model.lm.parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.05)  # LoRA B starts at zero: make the adapter matter
    model.eval()
    ids, _ = _example(model)
    with torch.no_grad():
        want = model.lm(input_ids=ids[None]).logits
    adapter_dir = str(tmp_path / "adapter")
    model.lm.save_pretrained(adapter_dir)
    base = AutoModelForCausalLM.from_pretrained(llm_dir, local_files_only=True)
    reloaded = PeftModel.from_pretrained(base, adapter_dir).eval()
    with torch.no_grad():
        got = reloaded(input_ids=ids[None]).logits
    assert torch.allclose(want, got, atol=1e-5)
    with reloaded.disable_adapter(), torch.no_grad():
        assert not torch.allclose(reloaded(input_ids=ids[None]).logits, want, atol=1e-4)
    state = model.checkpoint_state_dict()
    assert any("lora_" in k for k in state) and any(k.startswith("visual.") for k in state)
    assert not any(k.startswith("lm.") and "lora_" not in k for k in state)


def _save_plain_base(model, path):
    """The LM without adapters, as a plain transformers folder (what a downloaded LLaMA/Qwen looks like)."""
    from lib.networks.reg2rg.language import build_base_lm

    tok = model.tokenizer
    base = build_base_lm(model.config, len(tok), tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    base.save_pretrained(path)
    tok.save_pretrained(path)



def test_histogram_token_reads_the_masked_intensities():
    """``histogram_token``: one more token per region, from the crop's voxels inside the mask only; a
    soft-tissue mass in an air-filled region changes it, the empty outside (-1) does not count."""
    from lib.networks.reg2rg.visual import IntensityHistogram

    model = mini_model(histogram_token=True)
    assert model.config.region_tokens == model.config.n_visual_tokens + 2  # texture + histogram + geometry
    glb_v, crops, masks = _inputs(model)
    glb, reg = model.encode(glb_v, crops, masks)
    assert reg.shape[1] == model.config.region_tokens
    ids, labels = _example(model)
    assert torch.isfinite(model(ids, labels, glb_v, crops, masks))

    hist = IntensityHistogram(8, 16)
    lung = torch.full((2, 1, 8, 8, 4), -1.0)
    lung[:, :, 2:6, 2:6, :] = -0.75  # lung parenchyma inside the mask
    lung[1, :, 3:5, 3:5, 1:3] = 0.7  # a mass
    counts = hist.counts(lung)
    assert counts[0].sum() == counts[1].sum() == 64  # the -1 floor outside is not counted
    assert counts[0, 6] == 0 and counts[1, 6] == 8 and counts[0, 1] == 64 and counts[1, 1] == 56
    assert not torch.allclose(hist(lung)[0], hist(lung)[1])


def test_histogram_token_needs_the_texture_path_and_is_a_conf_switch():
    from lib.configs.reg2rg import build_network
    from lib.networks.reg2rg import Reg2RGConfig

    assert mini_model(histogram_token=True, use_texture=False).visual.histogram is None
    assert build_network("tiny", {}).config.histogram_token  # the tiny variant's default (bundled checkpoint)
    assert not build_network("tiny", {"reg2rg_histogram_token": "false"}).config.histogram_token
    assert not Reg2RGConfig.paper().histogram_token
    with pytest.raises(ValueError, match="reg2rg_histogram_token"):
        build_network("tiny", {"reg2rg_histogram_token": "maybe"})
