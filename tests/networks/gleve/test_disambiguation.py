"""Multi-lesion disambiguation (issue 4): two look-alike lesions in the same organ, told apart only
by the report's sizes. After training on scenes where the two sit at random places and the
sentences come in random order, each sentence of an unseen scene must get its own lesion."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.anatomy.labels import ABDOMEN_ORGANS
from lib.anatomy.prior import soft_organ_maps
from lib.networks.gleve import GLeVE, GLeVEConfig, build_lesion_graph
from lib.reports.parse import parse_report

X = 32
SIZES_MM = (6, 14)  # spacing 1 mm: radii 3 and 7 voxels
SENTENCES = {6: "Liver: 6 mm hypodense lesion in the liver.", 14: "Liver: 14 mm hypodense lesion in the liver."}
HASH = {"text_encoder": {"backend": "hash", "dim": 64}, "text_dim": 64}


def two_lesion_scene(rng: np.random.Generator):
    """A liver with a 6 mm and a 14 mm lesion of the same density at random, separate places; the
    report names them in random order. Returns image, organ maps, HU, report, masks in report order."""
    lab = np.zeros((X, X, X), np.uint8)
    lab[2:30, 2:30, 2:30] = ABDOMEN_ORGANS["liver"]
    zz, yy, xx = np.meshgrid(*[np.arange(X)] * 3, indexing="ij")
    while True:
        centres = [rng.integers(4 + r, 28 - r, size=3) for r in (3, 7)]
        if np.linalg.norm(centres[0] - centres[1]) > 12:
            break
    balls = {size: ((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) <= (size / 2) ** 2 for size, c in zip(SIZES_MM, centres)}
    hu = np.where(lab > 0, 60.0, -100.0)
    for b in balls.values():
        hu[b] = 10.0
    hu = hu + rng.normal(0, 5.0, hu.shape)
    order = list(SIZES_MM) if rng.random() < 0.5 else list(SIZES_MM)[::-1]
    report = " ".join(SENTENCES[s] for s in order)
    hu_t = torch.from_numpy(hu).float()
    image = ((hu_t.clamp(-200, 300) - 50.0) / 100.0)[None, None]
    organs = torch.from_numpy(soft_organ_maps(lab, ABDOMEN_ORGANS, spacing=(1, 1, 1), sigma_mm=1.0))
    masks = torch.stack([torch.from_numpy(balls[s]) for s in order]).float()
    return image, organs, hu_t, report, masks


def _dice(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(2 * (a & b).sum() / max(1, int(a.sum() + b.sum())))


@pytest.mark.slow
def test_each_sentence_gets_its_own_lesion():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _train_and_check()
    finally:
        torch.set_num_threads(threads)


def _train_and_check():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    train = [two_lesion_scene(rng) for _ in range(6)]
    test = [two_lesion_scene(rng) for _ in range(4)]
    model = GLeVE(GLeVEConfig.tiny(**HASH))
    graphs = {}

    def graph(report):
        if report not in graphs:
            graphs[report] = build_lesion_graph(parse_report(report))
            assert graphs[report].num_lesions == 2
        return graphs[report]

    lossf = model.make_loss()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(150):
        image, organs, hu, report, masks = train[step % len(train)]
        out = model(image, organs, graph(report), hu_image=hu, target_masks=masks)
        loss = lossf(out, masks)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()

    model.eval()
    correct = 0
    for image, organs, hu, report, masks in test:
        with torch.no_grad():
            lab = model(image, organs, graph(report), hu_image=hu).label_map()
        own = [_dice(lab == i + 1, masks[i] > 0) for i in range(2)]
        swapped = [_dice(lab == i + 1, masks[1 - i] > 0) for i in range(2)]
        correct += int(all(o >= 0.3 and o > s for o, s in zip(own, swapped)))
    assert correct >= 3, f"{correct}/4 unseen scenes had both sentences on their own lesion"
