"""The shared tiny Qwen2.5-VL: inputs, forward/backward, generate, LoRA, checkpoints, local folders."""
import io

import numpy as np
import pytest
import torch

from lib.networks.vlm import (
    IGNORE,
    Turn,
    VLMConfig,
    add_task_tokens,
    apply_lora,
    build_vlm,
    encode_dialogue,
    load_vlm_checkpoint,
    pad_batch,
    slices_to_inputs,
    token_ids,
    vlm_checkpoint,
    window_hu,
)
from lib.networks.vlm.tokenizer import BASE_VOCABULARY

pytestmark = pytest.mark.usefixtures("one_thread")

TASK = ("[seg]", "[det]", "[closer]")
CORPUS = BASE_VOCABULARY + ["The liver is enlarged. A 12 mm hypodense lesion in segment VII of the liver."] * 3


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    cfg = VLMConfig.tiny(task_tokens=TASK, vocab_size=400)
    model, tok, proc = build_vlm(cfg, corpus=CORPUS)
    return cfg, model, tok, proc


def _batch(cfg, tok, proc, answer="The liver is large. [seg]"):
    rng = np.random.default_rng(0)
    vis = slices_to_inputs([rng.uniform(-200, 300, (50, 70)), rng.uniform(-200, 300, (64, 64))], cfg, proc, hu=True)
    enc = encode_dialogue(tok, [Turn("Segment the liver.", vis.n_image_tokens[:1], answer), Turn("Can you have a closer look?", vis.n_image_tokens[1:], "[closer]")])
    return vis, enc


def test_window_hu_maps_the_window_to_unit_range():
    out = window_hu(np.array([-1000.0, -160.0, 40.0, 240.0, 3000.0]), level=40, width=400)
    np.testing.assert_allclose(out, [0.0, 0.0, 0.5, 1.0, 1.0])


def test_slices_become_fixed_token_grids(tiny):
    cfg, _, _, proc = tiny
    vis = slices_to_inputs([np.zeros((30, 90)), np.ones((64, 64)), np.ones((100, 100))], cfg, proc)
    side = cfg.image_size // cfg.patch_size
    assert vis.image_grid_thw.tolist() == [[1, side, side]] * 3
    assert vis.n_image_tokens == [side * side // cfg.merge_size**2] * 3
    assert vis.pixel_values.shape[0] == 3 * side * side
    with pytest.raises(ValueError):
        slices_to_inputs([np.zeros((4, 4, 4))], cfg, proc)
    with pytest.raises(ValueError):
        slices_to_inputs([], cfg, proc)


def test_task_tokens_are_single_tokens(tiny):
    _, _, tok, _ = tiny
    ids = token_ids(tok, TASK)
    assert len(set(ids)) == 3
    assert tok("x [seg] y", add_special_tokens=False)["input_ids"].count(ids[0]) == 1
    assert "[seg]" in tok.decode(tok("a [seg]", add_special_tokens=False)["input_ids"])
    with pytest.raises(ValueError):
        token_ids(tok, ["[never-added]"])


def test_dialogue_labels_cover_only_answers(tiny):
    cfg, _, tok, proc = tiny
    vis, enc = _batch(cfg, tok, proc)
    ids, labels = enc["input_ids"][0], enc["labels"][0]
    assert int(enc["mm_token_type_ids"].sum()) == sum(vis.n_image_tokens)
    learned = tok.decode(ids[labels != IGNORE])
    assert "The liver is large. [seg]" in learned and "[closer]" in learned
    assert "Segment" not in learned and "closer look" not in learned
    gen = encode_dialogue(tok, [Turn("Segment the liver.", vis.n_image_tokens[:1])], add_generation_prompt=True)
    assert tok.decode(gen["input_ids"][0]).endswith("assistant\n")
    with pytest.raises(ValueError):
        encode_dialogue(tok, [Turn("q", [], None), Turn("q2", [], "a")])


def test_pad_batch_right_pads():
    a = {"input_ids": torch.tensor([[5, 6, 7]]), "labels": torch.tensor([[5, 6, 7]]), "attention_mask": torch.ones(1, 3, dtype=torch.long)}
    b = {"input_ids": torch.tensor([[5]]), "labels": torch.tensor([[5]]), "attention_mask": torch.ones(1, 1, dtype=torch.long)}
    out = pad_batch([a, b], pad_id=0)
    assert out["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert out["labels"][1].tolist() == [5, IGNORE, IGNORE]
    assert out["attention_mask"][1].tolist() == [1, 0, 0]


def test_forward_backward_and_generate(tiny):
    cfg, model, tok, proc = tiny
    vis, enc = _batch(cfg, tok, proc)
    out = model(**enc, pixel_values=vis.pixel_values, image_grid_thw=vis.image_grid_thw, output_hidden_states=True)
    assert torch.isfinite(out.loss)
    assert out.hidden_states[-1].shape == (1, enc["input_ids"].shape[1], cfg.text["hidden_size"])
    out.loss.backward()
    vision_grad = [p.grad for n, p in model.named_parameters() if "visual" in n and p.grad is not None]
    assert vision_grad and any(float(g.abs().sum()) > 0 for g in vision_grad)  # the image reaches the loss
    model.zero_grad()
    gen = encode_dialogue(tok, [Turn("Segment the liver.", vis.n_image_tokens[:1])], add_generation_prompt=True)
    seq = model.generate(**gen, pixel_values=vis.pixel_values[: vis.pixel_values.shape[0] // 2], image_grid_thw=vis.image_grid_thw[:1], max_new_tokens=5, do_sample=False)
    assert seq.shape[1] > gen["input_ids"].shape[1]


def test_training_steps_lower_the_loss(tiny):
    cfg = tiny[0]
    torch.manual_seed(1)
    model, tok, proc = build_vlm(cfg, corpus=CORPUS)
    model = apply_lora(model, cfg)
    vis, enc = _batch(cfg, tok, proc)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(15):
        loss = model(**enc, pixel_values=vis.pixel_values, image_grid_thw=vis.image_grid_thw).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_lora_targets_and_frozen_base(tiny):
    cfg = VLMConfig.tiny(task_tokens=TASK, vocab_size=400, train_base=False, lora_r=4, lora_targets=("q_proj", "v_proj"))
    model, _, _ = build_vlm(cfg, corpus=CORPUS)
    model = apply_lora(model, cfg)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    lora = [n for n in trainable if "lora_" in n]
    assert lora and all(("q_proj" in n or "v_proj" in n) for n in lora)
    assert not any("visual" in n for n in lora)  # LoRA sits on the language model's attention
    assert set(trainable) - set(lora) <= {n for n in trainable if "embed_tokens" in n}
    a = next(m for n, m in model.named_modules() if n.endswith("q_proj") and hasattr(m, "lora_A"))
    assert a.lora_A["default"].weight.shape[0] == 4 and a.scaling["default"] == pytest.approx(cfg.lora_alpha / 4)


def test_tiny_checkpoint_round_trip(tiny):
    cfg = tiny[0]
    model, tok, proc = build_vlm(cfg, corpus=CORPUS)
    model = apply_lora(model, cfg)
    with torch.no_grad():  # make LoRA matter: B starts at zero
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    vis, enc = _batch(cfg, tok, proc)
    buf = io.BytesIO()
    torch.save(vlm_checkpoint(model, tok, cfg), buf)
    m2, t2, _, c2 = load_vlm_checkpoint(torch.load(io.BytesIO(buf.getvalue()), weights_only=False))
    assert c2 == cfg and t2.get_vocab() == tok.get_vocab()
    model.eval(), m2.eval()
    with torch.no_grad():
        a = model(**enc, pixel_values=vis.pixel_values, image_grid_thw=vis.image_grid_thw).logits
        b = m2(**enc, pixel_values=vis.pixel_values, image_grid_thw=vis.image_grid_thw).logits
    torch.testing.assert_close(a, b)


def test_local_folder_loading_and_lora_checkpoint(tiny, tmp_path):
    cfg, model, tok, proc = tiny
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    proc.save_pretrained(tmp_path)
    local_cfg = VLMConfig.paper(vlm_path=str(tmp_path), image_size=cfg.image_size, task_tokens=TASK + ("<slice 3>",))
    m2, t2, p2 = build_vlm(local_cfg)
    assert p2.patch_size == cfg.patch_size and len(t2) == len(tok) + 1
    assert m2.get_input_embeddings().weight.shape[0] >= len(t2)
    vis, enc = _batch(cfg, tok, proc)
    model.eval(), m2.eval()
    with torch.no_grad():
        a = model(**enc, pixel_values=vis.pixel_values, image_grid_thw=vis.image_grid_thw).logits
        b = m2(**enc, pixel_values=vis.pixel_values, image_grid_thw=vis.image_grid_thw).logits[..., : a.shape[-1]]
    torch.testing.assert_close(a, b)
    m2 = apply_lora(m2, local_cfg)
    with torch.no_grad():
        for n, p in m2.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    ck = vlm_checkpoint(m2, t2, local_cfg)
    assert ck["model_config"] is None and ck["tokenizer"] is None
    assert all("lora_" in k or "embed_tokens" in k for k in ck["state_dict"])  # the base is not copied
    m3, _, _, _ = load_vlm_checkpoint(ck)
    m2.eval(), m3.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            m2(**enc, pixel_values=vis.pixel_values, image_grid_thw=vis.image_grid_thw).logits,
            m3(**enc, pixel_values=vis.pixel_values, image_grid_thw=vis.image_grid_thw).logits,
        )


def test_add_task_tokens_to_a_built_model(tiny):
    cfg = tiny[0]
    model, tok, _ = build_vlm(VLMConfig.tiny(vocab_size=400), corpus=CORPUS)
    n = model.get_input_embeddings().weight.shape[0]
    ids = add_task_tokens(model, tok, ["<slice 0>", "<slice 1>"])
    assert model.get_input_embeddings().weight.shape[0] >= n + 2 and min(ids) >= n
    assert add_task_tokens(model, tok, ["<slice 0>"]) == ids[:1]  # idempotent


def test_image_prefixes_precede_their_images():
    model, tok, _ = build_vlm(VLMConfig.tiny(vocab_size=400), corpus=CORPUS)
    ids = add_task_tokens(model, tok, ["<slice 0>", "<slice 1>"])
    enc = encode_dialogue(tok, [Turn("Which slice?", [2, 3], "<slice 1>", image_prefixes=["<slice 0>", "<slice 1>"])])
    seq = enc["input_ids"][0].tolist()
    start = tok.convert_tokens_to_ids("<|vision_start|>")
    firsts = [i for i, t in enumerate(seq) if t == start]
    assert seq[firsts[0] - 1] == ids[0] and seq[firsts[1] - 1] == ids[1]
    assert int(enc["mm_token_type_ids"].sum()) == 5
    with pytest.raises(ValueError):
        encode_dialogue(tok, [Turn("q", [2, 3], "a", image_prefixes=["<slice 0>"])])
