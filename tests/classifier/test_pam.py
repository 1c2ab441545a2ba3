"""PAM on hand-made feature maps."""

import pytest
import torch

from bestie_labels.classifier import PAM, build_classifier, pam_disabled, set_pam


def test_pam_zeros_below_alpha_times_channel_max():
    x = torch.tensor([[
        [[1.0, 7.0, 10.0], [6.9, 7.5, -3.0]],  # max 10 -> boundary 7.0: keep 7.0 (not <), 10, 7.5
        [[-1.0, -2.0, -0.5], [-4.0, -1.0, -3.0]],  # all negative -> ReLU makes it all 0
        [[0.0, 2.0, 1.5], [1.4, 0.5, 2.0]],  # max 2 -> boundary 1.4: keep 2, 1.5, 1.4, 2
    ]])
    y = PAM(alpha=0.7)(x)
    expected = torch.tensor([[
        [[0.0, 7.0, 10.0], [0.0, 7.5, 0.0]],
        [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
        [[0.0, 2.0, 1.5], [1.4, 0.0, 2.0]],
    ]])
    assert torch.equal(y, expected)


def test_pam_alpha_and_disabled_is_relu():
    x = torch.tensor([[[[4.0, 1.0], [-2.0, 3.0]]]])
    assert torch.equal(PAM(alpha=0.5)(x), torch.tensor([[[[4.0, 0.0], [0.0, 3.0]]]]))
    assert torch.equal(PAM(alpha=0.0)(x), torch.relu(x))
    assert torch.equal(PAM(enabled=False)(x), torch.relu(x))
    with pytest.raises(ValueError):
        PAM(alpha=1.5)


def test_pam_has_no_parameters_and_gradient_flows_through_kept_values():
    pam = PAM()
    assert list(pam.parameters()) == []
    x = torch.tensor([[[[10.0, 5.0], [8.0, -1.0]]]], requires_grad=True)
    pam(x).sum().backward()
    assert torch.equal(x.grad, torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]]))


def test_pam_stays_active_in_eval_and_can_be_switched_off():
    torch.manual_seed(0)
    model = build_classifier("tiny", 3).eval()
    pams = [m for m in model.modules() if isinstance(m, PAM)]
    assert len(pams) == 3 and all(p.enabled for p in pams)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a = model.cam(x)
        with pam_disabled(model):
            assert not any(p.enabled for p in pams)
            b = model.cam(x)
        assert all(p.enabled for p in pams)
        c = model.cam(x)
    assert torch.equal(a, c) and not torch.allclose(a, b)
    assert set_pam(model, False) == [True, True, True]
    assert set_pam(model, True) == [False, False, False]
