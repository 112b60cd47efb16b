import numpy as np
import pytest
import torch

from lib.networks.medvolr1.propagator import SlicePropagator, boxes_to_mask, propagate
from lib.networks.medvolr1.propagator_train import make_samples, train_propagator
from lib.networks.medvolr1.rewards import dice
from lib.networks.medvolr1.targets import component_boxes, topk_key_slice

pytestmark = pytest.mark.usefixtures("one_thread")


def test_boxes_to_mask_covers_box_pixels():
    m = boxes_to_mask(np.array([[1, 2, 4, 5], [6.5, 6.5, 7.2, 8]]), 10)
    assert m[1:4, 2:5].all() and m.sum() == 9 + 2 * 2


class Constant(torch.nn.Module):
    """A stand-in network: foreground exactly where the memory channel is set, on bright slices only."""

    def __init__(self):
        super().__init__()
        from lib.networks.medvolr1.propagator import PropagatorConfig

        self.config = PropagatorConfig()

    def forward(self, x):
        img = x[0, 0]
        keep = float(img.mean() > 0.5)  # slices marked bright continue the object
        return (x[:, 2:3] * 2 - 1) * 10 * keep - 10 * (1 - keep)


def test_propagation_runs_both_ways_and_stops_at_an_empty_slice():
    img = np.zeros((9, 8, 8), np.float32)
    img[2:7] = 1.0  # the object spans slices 2..6
    net = Constant()
    out = propagate(net, img, 4, np.array([[2, 2, 5, 5]]))
    assert [bool(out[t].any()) for t in range(9)] == [False, False, True, True, True, True, True, False, False]
    assert out[3].sum() == 9


def test_training_samples_cover_key_and_propagation_cases(items):
    rng = np.random.default_rng(0)
    samples = make_samples(items[0], rng)
    assert all(x.shape == (3, 64, 64) and y.shape == (64, 64) for x, y in samples)
    keys = [x for x, _ in samples if x[1].any()]
    props = [x for x, _ in samples if not x[1].any()]
    assert keys and props and all(np.array_equal(x[1], x[2]) for x in keys)


def test_a_short_training_beats_the_untrained_network(items):
    torch.manual_seed(0)
    net = SlicePropagator()

    def score():
        d = []
        for it in items[:12]:
            k = topk_key_slice(it.seq_mask, 1)
            d.append(dice(propagate(net, it.seq.image, k, component_boxes(it.seq_mask[k])), it.seq_mask))
        return float(np.mean(d))

    before = score()
    hist = train_propagator(net, items, epochs=4, batch_size=32, lr=3e-3)
    assert hist[-1] < hist[0]
    assert score() > before + 0.1
