"""State dicts in the layouts of the official BESTIE release files, with random values.

Keys and shapes follow the official code's construction rules (clovaai/BESTIE
``models/hrnet.py`` PoseHighResolutionNet with heads seg/center/offset, HRNet's ImageNet
classification net, ``PAM/models/classifier.py`` VGG with its ``layerI_convJ`` aliases), written
out here independently of the project's modules so that a wrong key or shape there fails.
"""

from __future__ import annotations

import torch


def _bn(prefix: str, c: int) -> dict[str, tuple]:
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def _conv_bn(prefix: str, cout: int, cin: int, k: int) -> dict[str, tuple]:
    return {f"{prefix}.0.weight": (cout, cin, k, k), **_bn(f"{prefix}.1", cout)}


def _module(p: str, ch: list[int], rows: int) -> dict[str, tuple]:
    """One HighResolutionModule: 4 BasicBlocks per branch, fuse rows 0..rows-1."""
    s: dict[str, tuple] = {}
    for b, c in enumerate(ch):
        for k in range(4):
            for n in (1, 2):
                s[f"{p}.branches.{b}.{k}.conv{n}.weight"] = (c, c, 3, 3)
                s.update(_bn(f"{p}.branches.{b}.{k}.bn{n}", c))
    for i in range(rows):
        for j in range(len(ch)):
            if j > i:
                s.update(_conv_bn(f"{p}.fuse_layers.{i}.{j}", ch[i], ch[j], 1))
            for k in range(i - j):
                cout = ch[i] if k == i - j - 1 else ch[j]
                s.update(_conv_bn(f"{p}.fuse_layers.{i}.{j}.{k}", cout, ch[j], 3))
    return s


def hrnet_trunk_shapes(width: int, pose: bool) -> dict[str, tuple]:
    """HRNet trunk keys -> shapes; ``pose``: the last module of stage 4 has fuse row 0 only."""
    s = {"conv1.weight": (64, 3, 3, 3), **_bn("bn1", 64), "conv2.weight": (64, 64, 3, 3), **_bn("bn2", 64)}
    for b in range(4):
        cin = 64 if b == 0 else 256
        s.update({f"layer1.{b}.conv1.weight": (64, cin, 1, 1), f"layer1.{b}.conv2.weight": (64, 64, 3, 3),
                  f"layer1.{b}.conv3.weight": (256, 64, 1, 1)})
        for n, c in ((1, 64), (2, 64), (3, 256)):
            s.update(_bn(f"layer1.{b}.bn{n}", c))
    s.update({"layer1.0.downsample.0.weight": (256, 64, 1, 1), **_bn("layer1.0.downsample.1", 256)})
    ch = [width, 2 * width, 4 * width, 8 * width]
    s.update(_conv_bn("transition1.0", width, 256, 3))
    s.update(_conv_bn("transition1.1.0", 2 * width, 256, 3))
    s.update(_conv_bn("transition2.2.0", 4 * width, 2 * width, 3))
    s.update(_conv_bn("transition3.3.0", 8 * width, 4 * width, 3))
    for stage, n_mod, nb in ((2, 1, 2), (3, 4, 3), (4, 3, 4)):
        for m in range(n_mod):
            rows = 1 if (pose and stage == 4 and m == n_mod - 1) else nb
            s.update(_module(f"stage{stage}.{m}", ch[:nb], rows))
    return s


def random_state(shapes: dict[str, tuple], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random float32 tensors (int64 for ``num_batches_tracked``, positive running_var)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in shapes.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            out[k] = torch.rand(shape, generator=g) + 0.5
        else:
            out[k] = torch.randn(shape, generator=g) * 0.05
    return out


def bestie_hrnet_state(width: int = 48, num_classes: int = 20, seed: int = 0) -> dict[str, torch.Tensor]:
    """``BESTIE_HRNet48_*.pt``'s ``model``: pose-HRNet trunk + heads seg/center/offset."""
    shapes = hrnet_trunk_shapes(width, pose=True)
    for head, n in (("seg", num_classes + 1), ("center", num_classes), ("offset", 2)):
        shapes.update({f"{head}.0.weight": (256, width, 3, 3), f"{head}.0.bias": (256,),
                       f"{head}.2.weight": (n, 256, 1, 1), f"{head}.2.bias": (n,)})
    return random_state(shapes, seed)


def hrnet_imagenet_state(width: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    """``hrnet_wW-*.pth``: the full classification trunk and (a part of) its head."""
    s = random_state(hrnet_trunk_shapes(width, pose=False), seed)
    s["incre_modules.0.0.conv1.weight"] = torch.zeros(32, width, 1, 1)
    s["downsamp_modules.0.0.weight"] = torch.zeros(256, 128, 3, 3)
    s["final_layer.0.weight"] = torch.zeros(2048, 1024, 1, 1)
    s["classifier.weight"] = torch.zeros(1000, 2048)
    s["classifier.bias"] = torch.zeros(1000)
    return s


VGG_CONVS = ((0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256),
             (14, 256, 256), (17, 256, 512), (19, 512, 512), (21, 512, 512), (24, 512, 512),
             (26, 512, 512), (28, 512, 512))
VGG_ALIASES = ("layer1_conv1", "layer1_conv2", "layer2_conv1", "layer2_conv2", "layer3_conv1",
               "layer3_conv2", "layer3_conv3", "layer4_conv1", "layer4_conv2", "layer4_conv3",
               "layer5_conv1", "layer5_conv2", "layer5_conv3")


def pam_file(num_classes: int = 20, seed: int = 0) -> dict:
    """``PAM.pth``: ``{'model': sd, 'epoch', 'iter'}``; the aliases share the features' tensors."""
    shapes = {}
    for n, cin, cout in VGG_CONVS:
        shapes[f"features.{n}.weight"] = (cout, cin, 3, 3)
        shapes[f"features.{n}.bias"] = (cout,)
    for k in (1, 2, 3):
        shapes[f"extra_conv{k}.weight"] = (512, 512, 3, 3)
        shapes[f"extra_conv{k}.bias"] = (512,)
    shapes["extra_conv4.weight"] = (num_classes, 512, 1, 1)
    shapes["extra_conv4.bias"] = (num_classes,)
    sd = random_state(shapes, seed)
    for alias, (n, _, _) in zip(VGG_ALIASES, VGG_CONVS):
        sd[f"{alias}.weight"] = sd[f"features.{n}.weight"]
        sd[f"{alias}.bias"] = sd[f"features.{n}.bias"]
    return {"model": sd, "epoch": 15, "iter": 31740}
