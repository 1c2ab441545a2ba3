"""The trainer's Panoptic-DeepLab network: output contract, heads' initial values, training step,
pretrained backbone loading."""

from __future__ import annotations

import time

import pytest
import torch

from bestie_labels.core.errors import BestieError
from bestie_train.model import build_model


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_tiny_output_contract_at_input_resolution():
    torch.manual_seed(0)
    m = build_model("tiny", num_classes=3)
    assert m.num_classes == 3 and m.backbone_name == "tiny"
    assert m.backbone.out_strides["res2"] == 4
    out = m(torch.randn(2, 3, 64, 96))
    assert set(out) == {"semantic", "center", "offset"}
    assert out["semantic"].shape == (2, 4, 64, 96)   # C + 1 (background first)
    assert out["center"].shape == (2, 3, 64, 96)     # class-wise
    assert out["offset"].shape == (2, 2, 64, 96)     # dy, dx
    # sizes that are not multiples of the stride still come back at the input size
    m.eval()
    with torch.no_grad():
        out = m(torch.randn(1, 3, 70, 45))
    assert all(v.shape[-2:] == (70, 45) for v in out.values())


def test_heads_start_near_zero():
    torch.manual_seed(0)
    m = build_model("tiny", num_classes=5).eval()
    for head in (m.center_head, m.offset_head, m.semantic_head):
        assert torch.count_nonzero(head.out.bias) == 0
        assert head.out.weight.std() < 0.002
    with torch.no_grad():
        out = m(torch.randn(2, 3, 64, 64) * 2)
    assert out["center"].abs().max() < 0.05
    assert out["offset"].abs().max() < 0.05


def test_tiny_train_step_reaches_the_backbone():
    """One optimiser step (timing is measured outside the suite: ~0.2 s at batch 8 x 128x128)."""
    torch.manual_seed(0)
    m = build_model("tiny", num_classes=20)
    x = torch.randn(2, 3, 128, 128)
    before = m.backbone.stem[0][0].weight.detach().clone()
    t = time.perf_counter()
    out = m(x)
    loss = out["semantic"].mean() + out["center"].square().mean() + out["offset"].abs().mean()
    loss.backward()
    with torch.no_grad():  # plain SGD (torch.optim's first step imports torch._dynamo: seconds)
        for p in m.parameters():
            if p.grad is not None:
                p -= 0.1 * p.grad
    assert time.perf_counter() - t < 30  # a hang / pathological slowdown, not a benchmark
    assert m.backbone.stem[0][0].weight.grad.abs().sum() > 0
    assert m.offset_head.out.weight.grad.abs().sum() > 0
    # DistributedDataParallel needs every parameter in the graph
    assert [n for n, p in m.named_parameters() if p.grad is None] == []
    assert not torch.equal(before, m.backbone.stem[0][0].weight)


def test_batch_of_one_trains():
    """The ASPP image-pooling branch has no BN, so batch size 1 works in train mode."""
    torch.manual_seed(0)
    m = build_model("tiny", num_classes=2)
    assert m.training
    x = torch.randn(1, 3, 64, 64)
    out = m(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == \
        {"semantic": (1, 3, 64, 64), "center": (1, 2, 64, 64), "offset": (1, 2, 64, 64)}
    loss = sum(v.square().mean() for v in out.values())
    loss.backward()
    # every parameter, the pooling branch's included, gets a finite gradient
    assert [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()] == []
    # and one SGD step on that batch of one lowers its loss
    with torch.no_grad():
        for p in m.parameters():
            p -= 1e-3 * p.grad
        after = sum(v.square().mean() for v in m(x).values())
    assert after.item() < loss.item()


def test_resnet50_model_shapes_and_decoder():
    m = build_model("resnet50", num_classes=20)
    assert m.backbone_name == "resnet50"
    assert m.backbone.fc is None and not any(k.startswith("backbone.fc.") for k in m.state_dict())
    out = m(torch.randn(2, 3, 64, 64))
    (out["semantic"].mean() + out["center"].mean() + out["offset"].mean()).backward()
    assert [n for n, p in m.named_parameters() if p.grad is None] == []
    m.eval()
    assert [b[0].dilation for b in m.semantic_decoder.aspp.branches[1:4]] == [(3, 3), (6, 6), (9, 9)]
    assert m.semantic_decoder.low_level_keys == ("res3", "res2")
    with torch.no_grad():
        out = m(torch.randn(1, 3, 64, 64))
    assert out["semantic"].shape == (1, 21, 64, 64)
    assert out["center"].shape == (1, 20, 64, 64)
    assert out["offset"].shape == (1, 2, 64, 64)


def test_build_model_rejects_bad_arguments():
    with pytest.raises(BestieError, match="unknown backbone"):
        build_model("resnet18", 3)
    with pytest.raises(BestieError, match="num_classes"):
        build_model("tiny", 0)


def test_resnet_imagenet_file_through_build_model(tmp_path, capsys):
    from bestie_labels.backbones.resnet import resnet50

    src = {k: (v + 1 if v.is_floating_point() else v) for k, v in resnet50().state_dict().items()}
    torch.save(src, tmp_path / "resnet50.pth")
    m = build_model("resnet50", 20, pretrained=str(tmp_path / "resnet50.pth"))
    r = m.pretrained_report
    assert r.missing == [] and r.unexpected == [] and r.ignored == ["fc.bias", "fc.weight"] and len(r.loaded) == 318
    assert torch.equal(m.backbone.layer4[2].bn3.running_mean, src["layer4.2.bn3.running_mean"])
    assert "0 missing, 0 unexpected, 2 ignored" in capsys.readouterr().err


def test_pretrained_backbone_file_is_loaded(tmp_path, capsys):
    src = build_model("tiny", 3).backbone.state_dict()
    src = {k: (v + 1 if v.is_floating_point() else v) for k, v in src.items()}
    torch.save({"state_dict": src}, tmp_path / "tiny_backbone.pt")
    m = build_model("tiny", 3, pretrained=str(tmp_path / "tiny_backbone.pt"))
    assert m.pretrained_report.missing == [] and len(m.pretrained_report.loaded) == len(src)
    assert torch.equal(m.backbone.stage4[1][0].weight, src["stage4.1.0.weight"])
    assert "loaded" in capsys.readouterr().err
    torch.save({"foo.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(BestieError, match="no key matches"):
        build_model("tiny", 3, pretrained=str(tmp_path / "other.pt"))


def test_hrnet_w32_model_is_the_official_pose_form():
    m = build_model("hrnet_w32", num_classes=2)
    out = m(torch.randn(2, 3, 64, 64))
    (out["semantic"].mean() + out["center"].mean() + out["offset"].mean()).backward()
    assert [n for n, p in m.named_parameters() if p.grad is None] == []
    m.eval()
    assert m.backbone_name == "hrnet_w32" and m.num_classes == 2
    # heads on the stride-4 branch (32 channels): 3x3 conv to 256 with bias, ReLU, 1x1 conv
    sd = m.state_dict()
    assert {k: tuple(sd[k].shape) for k in sd if k.startswith(("seg.", "center.", "offset."))} == {
        "seg.0.weight": (256, 32, 3, 3), "seg.0.bias": (256,), "seg.2.weight": (3, 256, 1, 1), "seg.2.bias": (3,),
        "center.0.weight": (256, 32, 3, 3), "center.0.bias": (256,), "center.2.weight": (2, 256, 1, 1),
        "center.2.bias": (2,), "offset.0.weight": (256, 32, 3, 3), "offset.0.bias": (256,),
        "offset.2.weight": (2, 256, 1, 1), "offset.2.bias": (2,)}
    assert isinstance(m.seg[1], torch.nn.ReLU)
    assert not hasattr(m, "semantic_decoder")
    with torch.no_grad():
        out = m(torch.randn(1, 3, 70, 45))
    assert [tuple(out[k].shape) for k in ("semantic", "center", "offset")] == [(1, 3, 70, 45), (1, 2, 70, 45), (1, 2, 70, 45)]
