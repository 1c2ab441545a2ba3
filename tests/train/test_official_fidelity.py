"""Hand-computed official BESTIE behaviour (clovaai/BESTIE, read for facts), issue 20 item 4.

* the point flip: the official RandomHorizontalFlip maps a point's x to ``W - x - 1`` (W the
  width of the flipped tensor), the pixel the flipped map puts the point's pixel at;
* the IAG weight map of the pseudo labels: 1 on the pixels of accepted instances, 0 elsewhere,
  one map shared by every channel; the weighted losses divide by the number of pixels with a
  positive weight (``(weight > 0).sum()`` of a ``(B, 1, H, W)`` map), not by pixels x channels;
* the averaged loss: ``seg + (center_1 + center_2) / 2 + (offset_1 + offset_2) / 2`` where the
  second terms are the refined ones once refinement runs, and the pseudo ones before;
* the refinement start: ``--refine_iter 0`` (the scripts' REFINE_WARMUP) with the 1-based test
  ``cur_iter > refine_iter``: refined targets from the very first iteration.
"""

import numpy as np
import pytest
import torch

from bestie_train.augment import Geometry, warp_map, warp_points
from bestie_train.losses import bestie_loss, center_loss, offset_loss
from bestie_train.targets import make_targets


def test_point_flip_is_w_minus_x_minus_1():
    h, w = 6, 9
    g = Geometry(height=h, width=w, ys=0, yd=0, hl=h, xs=0, xd=0, wl=w, crop=w, flip=True)
    xs = np.array([0.0, 3.0, 8.0])
    pts = np.stack([xs, np.full(3, 2.0)], 1)
    np.testing.assert_allclose(warp_points(pts, g, h, w)[:, 0], w - xs - 1)  # 8, 5, 0
    # ... and the flipped map holds the point's pixel there
    img = np.zeros((h, w), np.uint8)
    img[2, 3] = 1
    out = warp_map(img, g, 0, nearest=True)
    assert np.argwhere(out[:, :w] == 1).tolist() == [[2, w - 3 - 1]]


def test_iag_weight_map_and_its_normaliser():
    inst = torch.zeros(4, 5, dtype=torch.long)
    inst[0, 0:2] = 1   # 2 px, class 0
    inst[3, 4] = 2     # 1 px, class 2
    t = make_targets(inst, torch.tensor([[0.0, 0.0], [4.0, 3.0]]), torch.tensor([0, 2]), 3, sigma=1.0)
    assert torch.equal(t["weight"], (inst > 0).float())  # binary, not the Gaussian
    # official Weighted_MSELoss: sum over (B, C, H, W) of w * err^2 / #(w > 0) over (B, 1, H, W)
    pred = torch.zeros(1, 3, 4, 5)
    target = torch.ones(1, 3, 4, 5)
    w = t["weight"][None]
    assert center_loss(pred, target, w).item() == pytest.approx(3 * 3 / 3)     # 3 channels x 3 px / 3 px
    w2 = w * 0.5
    assert center_loss(pred, target, w2).item() == pytest.approx(0.5 * 9 / 3)
    assert offset_loss(torch.zeros(1, 2, 4, 5), torch.full((1, 2, 4, 5), -2.0), w2).item() == pytest.approx(
        0.5 * 2 * 2 * 3 / 3)


def test_averaged_pseudo_and_refined_loss():
    sem = torch.zeros(1, 2, 2, 2)  # two equal logits: CE ln 2 at every pixel
    target = torch.ones(1, 2, 2, dtype=torch.long)
    out = {"semantic": sem, "center": torch.zeros(1, 1, 2, 2), "offset": torch.zeros(1, 2, 2, 2)}
    ones = torch.ones(1, 2, 2)
    pseudo = {"center": torch.full((1, 1, 2, 2), 0.1), "offset": torch.full((1, 2, 2, 2), 3.0), "weight": ones}
    refined = {"center": torch.full((1, 1, 2, 2), 0.2), "offset": torch.full((1, 2, 2, 2), 1.0),
               "weight": torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])}
    ln2 = float(np.log(2.0))
    c1, c2 = 200 * 0.01, 200 * 0.04                   # (0.1^2 x 4 px / 4), (0.2^2 x 1 px / 1)
    o1, o2 = 0.01 * 3.0 * 2, 0.01 * 1.0 * 2           # 2 channels each
    r = bestie_loss(out, target, pseudo, refined)
    assert r["total"].item() == pytest.approx(ln2 + (c1 + c2) / 2 + (o1 + o2) / 2, rel=1e-5)
    # before refinement runs, the second terms are the first ones
    r0 = bestie_loss(out, target, pseudo, None)
    assert r0["total"].item() == pytest.approx(ln2 + c1 + o1, rel=1e-5)
