import torch

from lib.networks.medvolr1.grpo import group_advantages, grpo_loss


def test_group_advantages_are_standardised_per_group():
    r = torch.tensor([[1.0, 2.0, 3.0, 6.0], [0.5, 0.5, 0.5, 0.5]])
    a = group_advantages(r)
    assert torch.allclose(a[0].mean(), torch.tensor(0.0), atol=1e-6)
    assert torch.allclose(a[0].std(), torch.tensor(1.0), atol=1e-3)
    assert torch.equal(a[1], torch.zeros(4))  # no signal in a tied group
    assert a[0].argmax() == 3 and a[0].argmin() == 0


def test_loss_raises_the_likelihood_of_advantaged_samples():
    logits = torch.zeros(2, 3, 5, requires_grad=True)
    ids = torch.tensor([[1, 2, 3], [4, 0, 2]])
    logp = torch.log_softmax(logits, -1).gather(-1, ids[..., None])[..., 0]
    adv = torch.tensor([1.0, -1.0])
    loss, stats = grpo_loss(logp, logp.detach(), logp.detach(), adv, torch.ones(2, 3), beta=0.0)
    loss.backward()
    # descending the loss raises sample 0's tokens and lowers sample 1's
    assert logits.grad[0, 0, 1] < 0 and logits.grad[1, 0, 4] > 0
    assert stats["kl"] == 0.0


def test_kl_penalty_and_mask():
    logp = torch.log(torch.tensor([[0.5, 0.5], [0.5, 0.5]]))
    ref = torch.log(torch.tensor([[0.25, 0.5], [0.25, 0.5]]))
    adv = torch.zeros(2)
    loss, stats = grpo_loss(logp, logp, ref, adv, torch.tensor([[1.0, 0.0], [1.0, 0.0]]), beta=1.0)
    k3 = 0.5 - torch.log(torch.tensor(0.5)) - 1.0  # exp(d) - d - 1 with d = log(0.25/0.5)
    assert torch.isclose(loss, k3, atol=1e-5)  # only the unmasked first token counts
    assert stats["kl"] > 0


def test_clip_bounds_the_ratio():
    old = torch.zeros(1, 1)
    new = torch.log(torch.tensor([[2.0]]))
    loss, stats = grpo_loss(new, old, new, torch.tensor([1.0]), torch.ones(1, 1), clip_eps=0.2, beta=0.0)
    assert torch.isclose(loss, torch.tensor(-1.2)) and stats["clip_frac"] == 1.0


def test_a_grpo_update_on_a_toy_reward_raises_the_rewarded_response(items):
    """The whole chain (rollout log-probs, mask, eq. 2, eq. 3, LoRA-only optimiser) moves the real
    policy towards the response the reward prefers and away from the others."""
    import copy

    from lib.networks.medvolr1.policy import MedVolPolicy
    from lib.networks.medvolr1.rewards import RewardTerms
    from lib.networks.medvolr1.training import GRPOSettings, _optimizer, grpo_update, rollout
    from lib.networks.vlm import VLMConfig

    torch.manual_seed(0)
    policy = MedVolPolicy.build(VLMConfig.tiny(), 16)
    for n, p in policy.model.named_parameters():
        p.requires_grad_("lora_" in n)
    ref = copy.deepcopy(policy.model).eval()
    s = GRPOSettings(group_size=4, max_new_tokens=12, temperature=0.7, lr=2e-3, warmup_ratio=0.0, steps=3)
    toy = lambda texts, it: [RewardTerms(total=float(i == 0)) for i in range(len(texts))]  # noqa: E731
    g = rollout(policy, ref, items[0], s, toy)
    assert len(set(policy.decode(g.ids))) == 4  # four different responses, so the toy reward is not tied
    assert g.advantages[0] > 0 and torch.all(g.advantages[1:] < 0)
    params, opt, sched = _optimizer(policy, s.lr, s.steps, s.warmup_ratio)
    for _ in range(s.steps):
        st = grpo_update(policy, [g], opt, sched, params, s)
    assert st["kl"] > 0  # the policy left π_ref
    with torch.no_grad():
        new = policy.token_logprobs(g.prompt, g.ids, temperature=s.temperature)
    gain = ((new - g.old_logp) * g.mask).sum(1)
    assert gain[0] > 0.05, gain
    assert gain[1:].mean() < 0, gain


def test_the_ratio_starts_at_one(items):
    """π_old = π_θ before the first update: the stat that would expose a wrong old log-prob."""
    import copy

    from lib.networks.medvolr1.policy import MedVolPolicy
    from lib.networks.medvolr1.rewards import RewardTerms
    from lib.networks.medvolr1.training import GRPOSettings, _optimizer, grpo_update, rollout
    from lib.networks.vlm import VLMConfig

    it = items[0]
    torch.manual_seed(1)
    policy = MedVolPolicy.build(VLMConfig.tiny(), 16)
    ref = copy.deepcopy(policy.model).eval()
    s = GRPOSettings(group_size=3, max_new_tokens=8, temperature=0.5, steps=1)
    g = rollout(policy, ref, it, s, lambda texts, _: [RewardTerms(total=float(len(t))) for t in texts])
    params, opt, sched = _optimizer(policy, s.lr, 1, 0.0)
    assert grpo_update(policy, [g], opt, sched, params, s)["max_logratio_at_start"] < 1e-4
