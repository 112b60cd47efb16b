import pytest
import torch

from lib.networks.medvolr1.answer import ParsedAnswer
from lib.networks.medvolr1.checkpoint import load_system, system_checkpoint
from lib.networks.medvolr1.policy import MedVolPolicy, slice_tokens
from lib.networks.medvolr1.propagator import SlicePropagator
from lib.networks.medvolr1.targets import sft_target
from lib.networks.medvolr1.training import GRPOSettings, train_grpo
from lib.networks.vlm import VLMConfig

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    return MedVolPolicy.build(VLMConfig.tiny(), 16)


def test_slice_tags_are_single_tokens_before_each_image(policy, items):
    it = items[0]
    p = policy.prompt(it.seq, it.query.text)
    ids = p.enc["input_ids"][0].tolist()
    vocab = policy.tokenizer.get_vocab()
    tags = [vocab[t] for t in slice_tokens(16)]
    positions = [ids.index(t) for t in tags]
    assert positions == sorted(positions)
    image_pad = vocab["<|image_pad|>"]
    assert sum(1 for i in ids if i == image_pad) == sum(p.vis.n_image_tokens) == 16 * 16
    assert p.enc["mm_token_type_ids"][0].sum() == 16 * 16


def test_sft_overfits_one_query_into_a_parsable_answer(policy, items):
    it = items[0]
    target = sft_target(it.seq_mask, it.query.target, k=1)
    opt = torch.optim.AdamW([q for q in policy.model.parameters() if q.requires_grad], lr=3e-3)
    first = None
    for _ in range(80):
        loss = policy.sft_loss([(it.seq, it.query.text, target)])
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else float(loss)
    assert float(loss) < 0.2 * first
    from lib.networks.medvolr1.pipeline import answer

    text, parsed, conf = answer(policy, it.seq, it.query.text)
    assert isinstance(parsed, ParsedAnswer), text
    assert text == target and 0.5 < conf <= 1.0


def test_logprobs_match_generation_mask_and_checkpoint_round_trip(policy, items):
    it = items[0]
    policy.model.eval()  # no dropout: log-probabilities are deterministic
    prompt = policy.prompt(it.seq, it.query.text)
    ids = policy.generate(prompt, n=3, do_sample=True, max_new_tokens=24)
    assert ids.shape[0] == 3
    lp = policy.token_logprobs(prompt, ids)
    assert lp.shape == ids.shape and torch.all(lp <= 0)
    mask = policy.response_mask(ids)
    assert mask.shape == ids.shape and torch.all(mask[:, 0] == 1)
    ckpt = system_checkpoint(policy, SlicePropagator(), {"n_slices": 16}, "sft")
    p2, prop2, meta = load_system(ckpt)
    assert meta["stage"] == "sft"
    with torch.no_grad():
        assert torch.allclose(p2.token_logprobs(p2.prompt(it.seq, it.query.text), ids), lp.detach(), atol=1e-4)


def test_grpo_survives_malformed_samples_and_reports_rf_zero(items):
    """A fresh policy writes garbage: every sample is a format failure with R_f = 0, and the loop runs on."""
    torch.manual_seed(1)
    fresh = MedVolPolicy.build(VLMConfig.tiny(), 16)
    trainable = {n for n, p in fresh.model.named_parameters() if p.requires_grad}
    stats = train_grpo(fresh, SlicePropagator(), items[:2], GRPOSettings(steps=2, group_size=2, max_new_tokens=16, lora_only=True))
    assert len(stats) == 2
    assert all(s["R_f"] == 0.0 and s["reward"] == 0.0 for s in stats)
    assert {n for n, p in fresh.model.named_parameters() if p.requires_grad} == trainable  # lora_only freezes the base only while it runs


def test_logprobs_at_a_temperature_are_the_sampling_distribution(policy, items):
    """π_old of eq. 3 must be the policy the rollouts sample from: temperature-scaled, suppressed tokens removed."""
    it = items[0]
    policy.model.eval()
    prompt = policy.prompt(it.seq, it.query.text)
    torch.manual_seed(0)
    out = policy.model.generate(
        **prompt.enc, pixel_values=prompt.vis.pixel_values, image_grid_thw=prompt.vis.image_grid_thw,
        do_sample=True, temperature=0.5, top_k=0, top_p=1.0, max_new_tokens=12, suppress_tokens=policy.suppressed_ids(),
        pad_token_id=policy.tokenizer.pad_token_id, eos_token_id=policy.tokenizer.eos_token_id,
        output_scores=True, return_dict_in_generate=True,
    )
    ids = out.sequences[:, prompt.enc["input_ids"].shape[1] :]
    sampled = torch.stack([torch.log_softmax(sc.float(), -1)[0, t] for sc, t in zip(out.scores, ids[0])])
    with torch.no_grad():
        at_t = policy.token_logprobs(prompt, ids, temperature=0.5)[0, : len(sampled)]
        at_1 = policy.token_logprobs(prompt, ids)[0, : len(sampled)]
    assert torch.allclose(at_t, sampled, atol=1e-4)
    assert not torch.allclose(at_1, sampled, atol=1e-3)  # the old T = 1 log-prob is not the sampling policy
