"""The classifier: VGG-16 torchvision layout, checkpoints, mAP, a tiny train-pam run."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from bestie_labels.backbones.vgg import CONV_INDICES, VGG16Trunk
from bestie_labels.classifier import (activation_maps, average_precision, build_classifier, load_classifier,
                                      load_pretrained, mean_average_precision)
from bestie_labels.classifier.checkpoint import FORMAT, VERSION, save_checkpoint
from bestie_labels.core.errors import BestieError

VGG_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)


def _torchvision_vgg16_state():
    """A random state dict in the layout of torchvision's vgg16 ImageNet checkpoint."""
    g = torch.Generator().manual_seed(0)
    sd, cin = {}, 3
    for i, c in zip(CONV_INDICES, VGG_CHANNELS):
        sd[f"features.{i}.weight"] = torch.randn(c, cin, 3, 3, generator=g)
        sd[f"features.{i}.bias"] = torch.randn(c, generator=g)
        cin = c
    # The fully connected head (4096x25088, 4096x4096, 1000x4096 in the real file) is ignored
    # by the trunk; small tensors under its keys keep the test fast.
    for i in (0, 3, 6):
        sd[f"classifier.{i}.weight"] = torch.zeros(4, 4)
        sd[f"classifier.{i}.bias"] = torch.zeros(4)
    return sd


def test_vgg16_trunk_shapes():
    trunk = VGG16Trunk()
    assert sorted(trunk.state_dict()) == sorted(f"features.{i}.{p}" for i in CONV_INDICES for p in ("weight", "bias"))
    assert trunk.features[23].stride == 1 and trunk.features[23].kernel_size == 3  # pool4
    assert [trunk.features[i].dilation for i in (24, 26, 28)] == [(2, 2)] * 3
    with torch.no_grad():
        assert tuple(trunk(torch.zeros(1, 3, 64, 48)).shape) == (1, 512, 8, 6)


def test_vgg16_loads_torchvision_layout(tmp_path, capsys):
    sd = _torchvision_vgg16_state()
    path = tmp_path / "vgg16.pth"
    torch.save(sd, path)
    model = build_classifier("vgg16", 20)
    rep = load_pretrained(model.pretrained_module, path)
    assert len(rep.loaded) == 26 and rep.missing == []
    assert rep.unexpected == sorted(f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("bias", "weight"))
    for k in ("features.0.weight", "features.28.bias"):
        assert torch.equal(model.backbone.state_dict()[k], sd[k])
    assert "classifier.0.weight" in capsys.readouterr().err  # reported, not silently dropped
    # a file matching nothing or with wrong shapes is refused
    torch.save({"foo.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(BestieError, match="no key matches"):
        load_pretrained(model.backbone, tmp_path / "bad.pth")
    sd["features.0.weight"] = torch.zeros(64, 3, 5, 5)
    torch.save(sd, tmp_path / "shape.pth")
    with pytest.raises(BestieError, match="wrong shape"):
        load_pretrained(model.backbone, tmp_path / "shape.pth")


def test_resnet50_loads_torchvision_layout(tmp_path):
    from bestie_labels.backbones.resnet import resnet50

    sd = {k: torch.randn(v.shape) if v.is_floating_point() else v for k, v in resnet50().state_dict().items()}
    assert "fc.weight" in sd and "layer4.2.conv3.weight" in sd
    torch.save(sd, tmp_path / "r50.pth")
    model = build_classifier("resnet50", 5, output_stride=16)
    rep = load_pretrained(model.pretrained_module, tmp_path / "r50.pth", verbose=False)
    assert rep.missing == [] and rep.unexpected == ["fc.bias", "fc.weight"]
    assert torch.equal(model.state_dict()["backbone.net.layer4.2.conv3.weight"], sd["layer4.2.conv3.weight"])
    with torch.no_grad():
        assert tuple(model.cam(torch.zeros(1, 3, 64, 64)).shape) == (1, 5, 4, 4)


def test_parameter_groups_split_backbone_and_new_layers():
    model = build_classifier("tiny", 4)
    g = model.parameter_groups()
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[id(p)].startswith("backbone.") for p in g[0] + g[1])
    assert {names[id(p)] for p in g[2]} == {"extra.0.weight", "extra.2.weight", "extra.4.weight", "classifier.weight"}
    assert {names[id(p)] for p in g[3]} == {"extra.0.bias", "extra.2.bias", "extra.4.bias", "classifier.bias"}
    assert sum(map(len, g)) == len(names)
    with torch.no_grad():
        x = torch.randn(2, 3, 64, 64)
        assert tuple(model.cam(x).shape) == (2, 4, 8, 8)
        torch.testing.assert_close(model(x), model.cam(x).mean((2, 3)))


def test_average_precision_by_hand():
    # ranks: 0.9 (pos), 0.8 (neg), 0.7 (pos), 0.1 (neg) -> AP = (1/1 + 2/3) / 2
    assert average_precision([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0]) == pytest.approx((1 + 2 / 3) / 2)
    # a tie between a positive and a negative counts as one step: precision 1/2 at recall 1
    assert average_precision([0.5, 0.5], [1, 0]) == pytest.approx(0.5)
    scores = np.array([[0.9, 0.2], [0.8, 0.7], [0.7, 0.1]])
    targets = np.array([[1, 0], [0, 1], [1, 0]], bool)
    assert mean_average_precision(scores, targets) == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)
    assert np.isnan(average_precision([0.3], [0]))


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(1)
    model = build_classifier("tiny", 3, alpha=0.6).eval()
    ck = tmp_path / "pam.pt"
    save_checkpoint(ck, {"format": FORMAT, "version": VERSION, "model": model.state_dict(),
                         "options": {"backbone": "tiny", "alpha": 0.6, "pam": True, "crop_size": 48},
                         "class_names": ["a", "b", "c"], "epoch": 2, "history": []})
    loaded, meta = load_classifier(ck, "cpu", num_classes=3)
    assert meta["class_names"] == ["a", "b", "c"] and meta["epoch"] == 2 and loaded.alpha == 0.6
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    labels = np.array([True, False, True])
    a = activation_maps(model, img, labels, input_size=48)
    b = activation_maps(loaded, img, labels)  # test size 48 from the checkpoint
    assert a.shape == (3, 40, 56) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not a[1].any() and a.min() >= 0 and a.max() <= 1
    # each view is divided by its max, then the two views are averaged
    assert (a[[0, 2]].max(axis=(1, 2)) >= 0.49).all()
    with pytest.raises(BestieError, match="3 classes"):
        load_classifier(ck, "cpu", num_classes=20)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(BestieError):
        load_classifier(tmp_path / "junk.pt")


def _train(root, out, *extra):
    from bestie_cli.labels_train_pam import command

    args = ["--data", str(root), "--out", str(out), "--backbone", "tiny", "--batch-size", "4",
            "--input-size", "48", "--crop-size", "40", "--seed", "3", *extra]
    return CliRunner().invoke(command, args)


def test_train_pam_cli_on_demo(demo_root, tmp_path):
    out = tmp_path / "pam.pt"
    res = _train(demo_root, out, "--epochs", "1")
    assert res.exit_code == 0, res.output
    assert "val mAP" in res.output
    model, meta = load_classifier(out, "cpu", num_classes=4)
    assert meta["epoch"] == 1 and meta["options"]["backbone"] == "tiny" and len(meta["history"]) == 1
    assert meta["class_names"] == ["disc", "block", "wedge", "cross"]
    assert model.test_size == 80  # tiny recipe: inference at twice the crop size
    # rerunning without --resume/--force is refused, and so is --resume with another option
    res = _train(demo_root, out, "--epochs", "1")
    assert res.exit_code == 1 and "--resume" in res.output
    res = _train(demo_root, out, "--epochs", "1", "--resume", "--alpha", "0.5")
    assert res.exit_code == 1 and "alpha" in res.output


@pytest.mark.slow
def test_train_pam_resume_equals_uninterrupted_run(demo_root, tmp_path):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    assert _train(demo_root, a, "--epochs", "1", "--val-split", "none").exit_code == 0
    res = _train(demo_root, a, "--epochs", "2", "--val-split", "none", "--resume")
    assert res.exit_code == 0, res.output
    assert _train(demo_root, b, "--epochs", "2", "--val-split", "none").exit_code == 0
    m1, meta1 = load_classifier(a)
    m2, meta2 = load_classifier(b)
    assert meta1["epoch"] == meta2["epoch"] == 2
    for k, v in m1.state_dict().items():
        torch.testing.assert_close(v, m2.state_dict()[k], rtol=0, atol=0, msg=k)


def test_multi_scale_maps_are_the_mean_of_the_single_scale_maps():
    torch.manual_seed(2)
    model = build_classifier("tiny", 3, alpha=0.6).eval()
    img = np.random.default_rng(1).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    labels = np.array([True, False, True])
    one = activation_maps(model, img, labels, input_size=48)
    np.testing.assert_array_equal(activation_maps(model, img, labels, input_size=48, scales=(1.0,)), one)
    # 48 x 0.5 = 24 and 48 x 1.5 = 72 as the shorter side
    half = activation_maps(model, img, labels, input_size=24)
    big = activation_maps(model, img, labels, input_size=72)
    multi = activation_maps(model, img, labels, input_size=48, scales=(1.0, 0.5, 1.5))
    np.testing.assert_allclose(multi, (one + half + big) / 3, atol=1e-6)
    assert not np.allclose(multi, one, atol=1e-3)
    with pytest.raises(ValueError, match="scales"):
        activation_maps(model, img, labels, scales=(1.0, 0.0))
    with pytest.raises(ValueError, match="scales"):
        activation_maps(model, img, labels, scales=())
