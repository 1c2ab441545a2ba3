"""Backbones: torchvision / official-HRNet key layouts, feature shapes, and local weight loading."""

from __future__ import annotations

import pytest
import torch

from bestie_labels.backbones import build_backbone
from bestie_labels.backbones.resnet import resnet50, resnet101
from bestie_labels.backbones.tiny import TinyBackbone
from bestie_labels.backbones.weights import load_pretrained, read_state_dict
from bestie_labels.core.errors import BestieError
from official_layouts import hrnet_imagenet_state, hrnet_trunk_shapes


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def bn_keys(prefix):
    return [f"{prefix}.{n}" for n in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]


def torchvision_resnet_keys(blocks):
    """State-dict keys of torchvision's Bottleneck ResNet, in order, from the block counts."""
    keys = ["conv1.weight", *bn_keys("bn1")]
    for layer, n in enumerate(blocks, start=1):
        for b in range(n):
            p = f"layer{layer}.{b}"
            for c in (1, 2, 3):
                keys += [f"{p}.conv{c}.weight", *bn_keys(f"{p}.bn{c}")]
            if b == 0:  # every stage's first block projects (channels x4 or stride 2)
                keys += [f"{p}.downsample.0.weight", *bn_keys(f"{p}.downsample.1")]
    return keys + ["fc.weight", "fc.bias"]


# ---------------------------------------------------------------------------------------- ResNet

@pytest.fixture(scope="module")
def r50():
    return resnet50().eval()


def test_resnet50_torchvision_key_layout(r50):
    expected = torchvision_resnet_keys([3, 4, 6, 3])
    # 2 stem + 16 blocks x 18 + 4 projections x 6 = 6 + 288 + 24, plus fc weight/bias
    assert len(expected) == 320
    assert list(r50.state_dict().keys()) == expected
    sd = r50.state_dict()
    assert sd["conv1.weight"].shape == (64, 3, 7, 7)
    assert sd["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert sd["layer3.0.conv2.weight"].shape == (256, 256, 3, 3)
    assert sd["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)
    assert sd["fc.weight"].shape == (1000, 2048)
    # torchvision's documented parameter count of resnet50
    assert sum(p.numel() for p in r50.parameters()) == 25_557_032


def test_resnet101_torchvision_key_layout():
    m = resnet101()
    expected = torchvision_resnet_keys([3, 4, 23, 3])
    assert len(expected) == 6 + 33 * 18 + 4 * 6 + 2 == 626
    assert list(m.state_dict().keys()) == expected
    assert sum(p.numel() for p in m.parameters()) == 44_549_160
    with torch.no_grad():
        f = m.eval().forward_features(torch.zeros(1, 3, 64, 64))
    assert f["res5"].shape == (1, 2048, 2, 2)


def test_resnet50_features_and_strides(r50):
    assert r50.out_channels == {"res2": 256, "res3": 512, "res4": 1024, "res5": 2048}
    assert r50.out_strides == {"res2": 4, "res3": 8, "res4": 16, "res5": 32}
    with torch.no_grad():
        f = r50.forward_features(torch.randn(1, 3, 64, 96))
    assert {k: tuple(v.shape) for k, v in f.items()} == {
        "res2": (1, 256, 16, 24), "res3": (1, 512, 8, 12), "res4": (1, 1024, 4, 6), "res5": (1, 2048, 2, 3)}


def test_resnet_dilation_like_torchvision():
    m = resnet50(replace_stride_with_dilation=[False, True, True]).eval()
    assert m.out_strides == {"res2": 4, "res3": 8, "res4": 8, "res5": 8}
    # torchvision: a dilated stage's first block keeps the previous dilation, the rest use the new one
    assert m.layer3[0].conv2.dilation == (1, 1) and m.layer3[0].conv2.stride == (1, 1)
    assert m.layer3[1].conv2.dilation == (2, 2)
    assert m.layer4[0].conv2.dilation == (2, 2) and m.layer4[2].conv2.dilation == (4, 4)
    assert m.layer4[2].conv2.padding == (4, 4)
    # same keys as the undilated net, so the same checkpoint loads
    assert list(m.state_dict()) == torchvision_resnet_keys([3, 4, 6, 3])
    with torch.no_grad():
        f = m.forward_features(torch.randn(1, 3, 64, 64))
    assert f["res4"].shape == (1, 1024, 8, 8) and f["res5"].shape == (1, 2048, 8, 8)


# ------------------------------------------------------------------------------------------ tiny

def test_tiny_features():
    m = TinyBackbone()
    assert m.out_strides == {"res2": 4, "res3": 8, "res4": 16, "res5": 16}
    f = m.forward_features(torch.randn(2, 3, 128, 96))
    for k, v in f.items():
        s = m.out_strides[k]
        assert tuple(v.shape) == (2, m.out_channels[k], 128 // s, 96 // s)


def test_build_backbone_names():
    assert isinstance(build_backbone("tiny"), TinyBackbone)
    with pytest.raises(BestieError, match="unknown backbone"):
        build_backbone("vgg11")


# --------------------------------------------------------------------------------------- weights

def randomised(state):
    """Every tensor changed (cheaply), so a successful load is visible."""
    return {k: (v * 0.5 + 0.25 if v.is_floating_point() else v + 7) for k, v in state.items()}


def test_torchvision_layout_file_loads_with_no_missing_keys(tmp_path, r50, capsys):
    state = randomised(resnet50().state_dict())
    path = tmp_path / "resnet50-imagenet.pth"
    torch.save(state, path)
    report = load_pretrained(r50, path)
    assert report.missing == [] and report.unexpected == []
    assert report.ignored == ["fc.bias", "fc.weight"]
    assert len(report.loaded) == 318
    got = r50.state_dict()
    assert torch.equal(got["layer2.3.bn2.running_var"], state["layer2.3.bn2.running_var"])
    assert torch.equal(got["layer4.0.downsample.0.weight"], state["layer4.0.downsample.0.weight"])
    assert not torch.equal(got["fc.weight"], state["fc.weight"])  # head ignored on purpose
    assert "loaded 318 tensors, 0 missing, 0 unexpected, 2 ignored" in capsys.readouterr().err


@pytest.mark.parametrize("wrap", ["state_dict", "model", "module"])
def test_wrapped_checkpoints_and_module_prefix(tmp_path, wrap):
    src = randomised(TinyBackbone().state_dict())
    if wrap == "module":
        obj = {f"module.{k}": v for k, v in src.items()}
    else:
        obj = {wrap: src, "epoch": 3}
    torch.save(obj, tmp_path / "w.pt")
    m = TinyBackbone()
    report = load_pretrained(m, tmp_path / "w.pt", verbose=False)
    assert report.missing == [] and report.unexpected == [] and report.ignored == []
    assert all(torch.equal(m.state_dict()[k], v) for k, v in src.items())


def test_partial_file_reports_missing_and_unexpected_loudly(tmp_path, capsys):
    src = TinyBackbone().state_dict()
    kept = {k: v for k, v in src.items() if not k.startswith("stage5.")}
    kept["extra.weight"] = torch.zeros(3)
    torch.save(kept, tmp_path / "partial.pt")
    report = load_pretrained(TinyBackbone(), tmp_path / "partial.pt")
    # torch fills an absent BN num_batches_tracked silently (old checkpoints lack it)
    assert report.missing == sorted(k for k in src if k.startswith("stage5.") and "num_batches" not in k)
    assert len(report.missing) == 2 * 5  # two conv-BN: conv weight + 4 BN tensors each
    assert report.unexpected == ["extra.weight"]
    err = capsys.readouterr().err
    assert "missing: stage5.0.0.weight" in err and "unexpected: extra.weight" in err and "WARNING" in err


def test_wrong_shape_raises(tmp_path):
    src = TinyBackbone().state_dict()
    src["stem.0.0.weight"] = torch.zeros(16, 3, 5, 5)
    torch.save(src, tmp_path / "bad.pt")
    with pytest.raises(BestieError, match=r"wrong shape.*stem\.0\.0\.weight \(16, 3, 5, 5\) vs \(16, 3, 3, 3\)"):
        load_pretrained(TinyBackbone(), tmp_path / "bad.pt")


def test_no_matching_keys_raises(tmp_path, r50):
    torch.save(TinyBackbone().state_dict(), tmp_path / "tiny.pt")
    with pytest.raises(BestieError, match="no key matches"):
        load_pretrained(r50, tmp_path / "tiny.pt")


def test_unreadable_files_raise(tmp_path):
    with pytest.raises(BestieError, match="not found"):
        read_state_dict(tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(BestieError, match="cannot read"):
        read_state_dict(tmp_path / "junk.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(BestieError, match="expected a state dict"):
        read_state_dict(tmp_path / "list.pth")
    torch.save({"epoch": 1}, tmp_path / "empty.pth")
    with pytest.raises(BestieError, match="no tensors"):
        read_state_dict(tmp_path / "empty.pth")


# ----------------------------------------------------------------------------------------- HRNet

def test_layout_helper_counts():
    """The independent official-layout helper against counts worked out by hand for W32.

    Classification form: stem 12 + layer1 78 + transitions 12+6+6 + stage2 108 + stage3 4x186
    + stage4 3x288 = 1830 keys. The pose form lacks fuse rows 1-3 of the last module; row i
    has a (i-j)-step down path from every j < i and one 1x1 up conv from every j > i, 6 keys
    (conv + 5 BN) per conv: row 1 = 6 + 12, row 2 = 18 + 6, row 3 = 36, 78 keys in all."""
    full = hrnet_trunk_shapes(32, pose=False)
    pose = hrnet_trunk_shapes(32, pose=True)
    assert len(full) == 1830
    assert len(full) - len(pose) == 78
    assert set(pose) < set(full)


@pytest.fixture(scope="module")
def w32():
    from bestie_labels.backbones.hrnet import hrnet_w32

    return hrnet_w32()


def test_hrnet_w32_official_pose_layout(w32):
    sd = w32.state_dict()
    expected = hrnet_trunk_shapes(32, pose=True)
    assert sorted(sd) == sorted(expected)
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected
    # representative shapes written out by hand (W = 32)
    assert tuple(sd["transition1.1.0.0.weight"].shape) == (64, 256, 3, 3)
    assert tuple(sd["stage4.1.fuse_layers.3.0.2.0.weight"].shape) == (256, 32, 3, 3)
    assert tuple(sd["stage4.2.fuse_layers.0.3.0.weight"].shape) == (32, 256, 1, 1)
    assert not any(k.startswith("stage4.2.fuse_layers.1.") for k in sd)
    assert w32.out_channels == {"res2": 32}


def test_hrnet_w32_features(w32):
    with torch.no_grad():
        f = w32.eval().forward_features(torch.randn(1, 3, 64, 96))
        odd = w32.forward_features(torch.randn(1, 3, 70, 45))  # sizes that do not divide by 32
    assert {k: tuple(v.shape) for k, v in f.items()} == {"res2": (1, 32, 16, 24)}
    assert tuple(odd["res2"].shape[-2:]) == (18, 12)


def test_official_hrnet_imagenet_file_loads_and_extras_are_ignored(tmp_path, w32, capsys):
    state = hrnet_imagenet_state(32)
    torch.save(state, tmp_path / "hrnet_w32-36af842e.pth")
    report = load_pretrained(w32, tmp_path / "hrnet_w32-36af842e.pth", ignore_prefixes=w32.pretrained_ignore_prefixes)
    assert report.missing == [] and report.unexpected == [] and len(report.loaded) == 1752
    extra_rows = sorted(k for k in state if k.startswith(("stage4.2.fuse_layers.1.", "stage4.2.fuse_layers.2.",
                                                          "stage4.2.fuse_layers.3.")))
    assert len(extra_rows) == 78
    assert report.ignored == sorted(extra_rows + ["classifier.bias", "classifier.weight", "downsamp_modules.0.0.weight",
                                                  "final_layer.0.weight", "incre_modules.0.0.conv1.weight"])
    assert torch.equal(w32.state_dict()["stage3.1.fuse_layers.2.0.1.0.weight"], state["stage3.1.fuse_layers.2.0.1.0.weight"])


@pytest.mark.slow
def test_hrnet_w48():
    from bestie_labels.backbones.hrnet import hrnet_w48

    m = hrnet_w48().eval()
    sd = m.state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == hrnet_trunk_shapes(48, pose=True)
    with torch.no_grad():
        f = m.forward_features(torch.randn(1, 3, 64, 64))
    assert tuple(f["res2"].shape) == (1, 48, 16, 16)
