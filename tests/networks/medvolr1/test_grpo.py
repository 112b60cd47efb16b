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
