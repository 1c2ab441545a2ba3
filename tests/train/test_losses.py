"""Losses of Eq. (3)-(6) against hand computations on a 4x4 example."""

import math

import pytest
import torch

from bestie_train.losses import LossWeights, bestie_loss, center_loss, hard_pixel_ce, offset_loss

LN2 = math.log(2.0)


def semantic_example():
    """2 classes (C=1) + an unused third channel at -100 (so C=2 for the center head).

    Per-pixel CE with two live logits is ln(1 + e^d), d = logit(other) - logit(target):
      (0,0) target 1, logits [ln7, 0]  -> ln 8 = 3 ln2
      (0,1) target 0, logits [0, ln3]  -> ln 4 = 2 ln2
      (2,2) target 1, logits [ln3, 0]  -> ln 4 = 2 ln2
      (3,3) target 255 (would be ln 16), (3,0) target 255
      the 11 other pixels: target 1, logits [0, 0] -> ln 2
    """
    logits = torch.zeros(1, 3, 4, 4)
    logits[0, 2] = -100.0
    target = torch.ones(1, 4, 4, dtype=torch.int64)
    logits[0, 0, 0, 0] = math.log(7.0)
    target[0, 0, 1] = 0
    logits[0, 1, 0, 1] = math.log(3.0)
    logits[0, 0, 2, 2] = math.log(3.0)
    logits[0, 0, 3, 3] = math.log(15.0)
    target[0, 3, 3] = 255
    target[0, 3, 0] = 255
    return logits, target


def test_hard_pixel_ce_keeps_top_20_percent():
    logits, target = semantic_example()
    # k = floor(0.2 * 16) = 3 -> the three hardest valid pixels: ln8, ln4, ln4.
    got = hard_pixel_ce(logits, target)
    assert got.item() == pytest.approx(7.0 / 3.0 * LN2, rel=1e-5)
    # 100%: mean over the 14 valid pixels = (3+2+2+11) ln2 / 14.
    assert hard_pixel_ce(logits, target, 1.0).item() == pytest.approx(18.0 / 14.0 * LN2, rel=1e-5)


def test_hard_pixel_ce_fewer_valid_than_k_and_none():
    logits, target = semantic_example()
    few = torch.full_like(target, 255)
    few[0, 0, 0] = 1  # ln 8
    few[0, 1, 1] = 1  # ln 2
    # k = 3 > 2 valid pixels: mean over both.
    assert hard_pixel_ce(logits, few).item() == pytest.approx(2.0 * LN2, rel=1e-5)
    none = torch.full_like(target, 255)
    lg = logits.clone().requires_grad_(True)
    loss = hard_pixel_ce(lg, none)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(lg.grad).all() and lg.grad.abs().sum() == 0


def instance_example():
    """Center (C=2) / offset maps, pred all zero, weights on the top-left 2x2 block.

    weight: (0,0)=1 (0,1)=1 (1,0)=1 (1,1)=0.5 -> 4 positive pixels
    center target ch0: (0,0)=1 (0,1)=0.5 (1,0)=0 (1,1)=0.2, 0.1 on the 12 other pixels
                  ch1: (0,0)=0.3, else 0
    offset target: (0,0)=(2,-1) (0,1)=(0,4) (1,0)=(1,1) (1,1)=(-2,0), (10,0) elsewhere
    refined weight: (3,3)=0.8 (3,2)=0.4; refined center ch0 (3,3)=1 (3,2)=0.5;
    refined offset (3,3)=(1,-1) (3,2)=(0,3).
    """
    w = torch.zeros(1, 4, 4)
    w[0, 0, 0] = w[0, 0, 1] = w[0, 1, 0] = 1.0
    w[0, 1, 1] = 0.5
    c = torch.full((1, 2, 4, 4), 0.0)
    c[0, 0] = 0.1
    c[0, 0, 0, 0], c[0, 0, 0, 1], c[0, 0, 1, 0], c[0, 0, 1, 1] = 1.0, 0.5, 0.0, 0.2
    c[0, 1, 0, 0] = 0.3
    o = torch.zeros(1, 2, 4, 4)
    o[0, 0] = 10.0
    for (y, x), (dy, dx) in {(0, 0): (2, -1), (0, 1): (0, 4), (1, 0): (1, 1), (1, 1): (-2, 0)}.items():
        o[0, 0, y, x], o[0, 1, y, x] = dy, dx
    pseudo = {"center": c, "offset": o, "weight": w}
    rw = torch.zeros(1, 4, 4)
    rw[0, 3, 3], rw[0, 3, 2] = 0.8, 0.4
    rc = torch.zeros(1, 2, 4, 4)
    rc[0, 0, 3, 3], rc[0, 0, 3, 2] = 1.0, 0.5
    ro = torch.zeros(1, 2, 4, 4)
    ro[0, 0, 3, 3], ro[0, 1, 3, 3] = 1.0, -1.0
    ro[0, 1, 3, 2] = 3.0
    refined = {"center": rc, "offset": ro, "weight": rw}
    return pseudo, refined


def test_center_and_offset_losses_by_hand():
    pseudo, refined = instance_example()
    zc, zo = torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4)
    # sum w*err^2 = 1*1 + 1*.25 + 1*0 + .5*.04 + 1*.09 (channel 1) = 1.36; / 4 pixels
    assert center_loss(zc, pseudo["center"], pseudo["weight"]).item() == pytest.approx(0.34, rel=1e-6)
    # sum w*|err| = 3 + 4 + 2 + .5*2 = 10; / 4
    assert offset_loss(zo, pseudo["offset"], pseudo["weight"]).item() == pytest.approx(2.5, rel=1e-6)
    # refined: (.8*1 + .4*.25) / 2 = 0.45 ; (.8*2 + .4*3) / 2 = 1.4
    assert center_loss(zc, refined["center"], refined["weight"]).item() == pytest.approx(0.45, rel=1e-6)
    assert offset_loss(zo, refined["offset"], refined["weight"]).item() == pytest.approx(1.4, rel=1e-6)
    # no positive weight: exactly 0, no NaN
    z = torch.zeros(1, 4, 4)
    assert center_loss(zc, pseudo["center"], z).item() == 0.0
    assert offset_loss(zo, pseudo["offset"], z).item() == 0.0


def outputs_zero():
    logits, target = semantic_example()
    out = {"semantic": logits, "center": torch.zeros(1, 2, 4, 4, requires_grad=True),
           "offset": torch.zeros(1, 2, 4, 4, requires_grad=True)}
    return out, target


def test_total_loss_with_refinement_by_hand():
    out, target = outputs_zero()
    pseudo, refined = instance_example()
    terms = bestie_loss(out, target, pseudo, refined)
    sem = 7.0 / 3.0 * LN2
    assert terms["semantic"].item() == pytest.approx(sem, rel=1e-5)
    assert terms["center_pseudo"].item() == pytest.approx(200 * 0.34, rel=1e-5)
    assert terms["center_refined"].item() == pytest.approx(200 * 0.45, rel=1e-5)
    assert terms["offset_pseudo"].item() == pytest.approx(0.01 * 2.5, rel=1e-5)
    assert terms["offset_refined"].item() == pytest.approx(0.01 * 1.4, rel=1e-5)
    expected = sem + 0.5 * (68.0 + 90.0) + 0.5 * (0.025 + 0.014)
    assert terms["total"].item() == pytest.approx(expected, rel=1e-5)
    terms["total"].backward()
    assert out["center"].grad is not None


def test_total_loss_without_refinement_drops_the_half_factors():
    out, target = outputs_zero()
    pseudo, _ = instance_example()
    terms = bestie_loss(out, target, pseudo, None)
    assert terms["total"].item() == pytest.approx(7.0 / 3.0 * LN2 + 68.0 + 0.025, rel=1e-5)
    assert terms["center_refined"].item() == terms["center_pseudo"].item()


def test_custom_weights():
    out, target = outputs_zero()
    pseudo, _ = instance_example()
    terms = bestie_loss(out, target, pseudo, None, weights=LossWeights(2.0, 1.0, 1.0))
    assert terms["total"].item() == pytest.approx(2 * 7.0 / 3.0 * LN2 + 0.34 + 2.5, rel=1e-5)


def test_iag_off_trains_every_pixel():
    out, target = outputs_zero()
    pseudo, _ = instance_example()
    terms = bestie_loss(out, target, pseudo, None, iag=False)
    # center: (1 + .25 + 0 + .04 + 12*.01 + .09) / 16 = 1.5/16 ; offset (3+4+2+2+12*10)/16
    assert terms["center_pseudo"].item() == pytest.approx(200 * 1.5 / 16, rel=1e-5)
    assert terms["offset_pseudo"].item() == pytest.approx(0.01 * 131.0 / 16, rel=1e-5)


def test_iag_off_trains_every_pixel_for_the_refined_terms_too():
    out, target = outputs_zero()
    pseudo, refined = instance_example()
    terms = bestie_loss(out, target, pseudo, refined, iag=False)
    # refined center: (1 + .25) / 16 pixels (not / 2 weighted ones: weight 1 everywhere);
    # refined offset: (|1| + |-1| + |3|) / 16
    assert terms["center_refined"].item() == pytest.approx(200 * 1.25 / 16, rel=1e-5)
    assert terms["offset_refined"].item() == pytest.approx(0.01 * 5.0 / 16, rel=1e-5)
    assert terms["center_pseudo"].item() == pytest.approx(200 * 1.5 / 16, rel=1e-5)
    expected = 7.0 / 3.0 * LN2 + 0.5 * 200 * (1.5 + 1.25) / 16 + 0.5 * 0.01 * (131.0 + 5.0) / 16
    assert terms["total"].item() == pytest.approx(expected, rel=1e-5)


def test_iag_changes_exactly_the_weight_region():
    """Gradient reaches the center/offset maps only on weighted pixels with IAG, everywhere
    the target differs without it."""
    pseudo, _ = instance_example()
    grads = {}
    for iag in (True, False):
        out, target = outputs_zero()
        bestie_loss(out, target, pseudo, None, iag=iag)["total"].backward()
        grads[iag] = (out["center"].grad.abs().sum(1) > 0) | (out["offset"].grad.abs().sum(1) > 0)
    assert torch.equal(grads[True][0], pseudo["weight"][0] > 0)
    assert grads[False].all()
