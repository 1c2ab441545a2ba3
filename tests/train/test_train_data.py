"""Training data: semantic target, component map, augmentation determinism, batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bestie_labels.algorithms.components import component_map
from bestie_labels.algorithms.transfer_options import TransferOptions
from bestie_labels.datasets import open_dataset
from bestie_labels.core.errors import BestieError
from bestie_labels.stages import run_cues, run_transfer, run_wsss
from bestie_labels.store.file import StoreWriter
from bestie_labels.core.constants import IMAGENET_MEAN as MEAN
from bestie_labels.core.constants import IMAGENET_STD as STD
from bestie_train.batches import EpochBatches, collate
from bestie_train.data import TrainData, normalize_image, sample_rng, semantic_target


@pytest.fixture(scope="module")
def stores(demo_root, tmp_path_factory):
    """GT class masks as WSSS, GT points as cues, and their transfer (point centers)."""
    d = tmp_path_factory.mktemp("train_data")
    ds = open_dataset(demo_root, split="train")
    run_wsss(ds, d / "wsss.h5", from_gt=True)
    run_cues(ds, d / "cues.h5", method="points")
    run_transfer(ds, d / "cues.h5", d / "wsss.h5", d / "pseudo.h5")
    return ds, d / "pseudo.h5", d / "wsss.h5"


def test_semantic_target_pseudo_instances_override_wsss():
    wsss = np.array([[0, 1, 1],
                     [2, 2, 255],
                     [0, 0, 0]], np.uint8)
    inst = np.array([[0, 1, 0],
                     [0, 0, 2],
                     [2, 0, 0]], np.int64)
    classes = np.array([0, 2])  # instance 1 is class 0 (value 1), instance 2 class 2 (value 3)
    want = np.array([[0, 1, 1],
                     [2, 2, 3],
                     [3, 0, 0]], np.uint8)
    np.testing.assert_array_equal(semantic_target(wsss, inst, classes), want)


def test_component_map_numbers_components_class_by_class():
    wsss = np.array([[1, 0, 1, 2],
                     [1, 0, 0, 2],
                     [0, 3, 0, 0],
                     [2, 0, 0, 255]], np.uint8)
    labels = np.array([True, True, False])  # class 2 (value 3) is not an image-level class
    want = np.array([[1, 0, 2, 3],
                     [1, 0, 0, 3],
                     [0, 0, 0, 0],
                     [4, 0, 0, 0]], np.int64)
    np.testing.assert_array_equal(component_map(wsss, labels), want)


def test_component_map_connectivity_4_splits_diagonal_neighbours():
    m = np.array([[1, 0, 0],
                  [0, 1, 0],
                  [0, 1, 1]], np.uint8)
    np.testing.assert_array_equal(component_map(m, np.array([True]), connectivity=4),
                                  [[1, 0, 0], [0, 2, 0], [0, 2, 2]])
    np.testing.assert_array_equal(component_map(m, np.array([True]), connectivity=8), m.astype(np.int64))
    with pytest.raises(ValueError, match="connectivity must be 4 or 8"):
        component_map(m, np.array([True]), connectivity=6)


def test_component_map_skips_absent_classes_and_numbers_on_across_classes():
    m = np.array([[2, 0, 2, 0, 3],
                  [0, 0, 0, 0, 3],
                  [4, 4, 0, 2, 0]], np.uint8)
    labels = np.array([True, True, True, True])  # class 0 (value 1) is labelled but absent
    got = component_map(m, labels)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, [[1, 0, 2, 0, 4],
                                        [0, 0, 0, 0, 4],
                                        [5, 5, 0, 3, 0]])


@pytest.mark.parametrize("connectivity,parts", [(4, 2), (8, 1)])
def test_refinement_components_follow_the_transfer_connectivity(stores, tmp_path, connectivity, parts):
    """The ``components`` of a sample (the regions of self-refinement) are made with the
    connectivity ``transfer --connectivity`` recorded in the pseudo store: two squares of one
    class touching at a corner are two regions with 4, one with 8."""
    ds, _, _ = stores
    rec = ds.records[0]
    k = int(np.flatnonzero(rec.labels)[0])
    mask = np.zeros((rec.height, rec.width), np.uint8)
    mask[10:20, 10:20] = mask[20:30, 20:30] = k + 1
    wsss = StoreWriter(tmp_path / "wsss.h5", "wsss", {"method": "test"}, {}, ds.image_ids)
    pseudo = StoreWriter(tmp_path / "pseudo.h5", "pseudo", {"from_gt": False, "min_area": 50,
                                                            "connectivity": connectivity, "center": "centroid"},
                         {}, ds.image_ids)
    empty = {"classes": np.zeros(0, np.int32), "centers": np.zeros((0, 2), np.float32),
             "scores": np.zeros(0, np.float32)}
    for r in ds.records:
        wsss.add(r.image_id, {"mask": mask if r is rec else np.zeros((r.height, r.width), np.uint8)})
        pseudo.add(r.image_id, {"instances": np.zeros((r.height, r.width), np.uint16), **empty})
    wsss.finish()
    pseudo.finish()
    td = TrainData(ds, tmp_path / "pseudo.h5", tmp_path / "wsss.h5", crop=max(rec.height, rec.width), augment=False)
    comps = td[0]["components"].numpy()
    assert len(np.unique(comps[10:30, 10:30][mask[10:30, 10:30] > 0])) == parts
    assert (comps[mask == 0] == 0).all() and (comps[mask > 0] > 0).all()


def test_normalize_image_matches_imagenet_statistics():
    img = np.zeros((2, 3, 3), np.uint8)
    img[..., 0] = 255
    x = normalize_image(img)
    assert x.shape == (3, 2, 3) and x.dtype == torch.float32
    assert torch.allclose(x[0], torch.full((2, 3), (1 - MEAN[0]) / STD[0]))
    assert torch.allclose(x[2], torch.full((2, 3), -MEAN[2] / STD[2]))


def test_sample_shapes_and_collate(stores):
    ds, pseudo, wsss = stores
    td = TrainData(ds, pseudo, wsss, crop=48, seed=3)
    s = td[(0, 1)]
    c = ds.num_classes
    assert s["image"].shape == (3, 48, 48) and s["image"].dtype == torch.float32
    assert s["semantic"].shape == (48, 48) and s["semantic"].dtype == torch.int64
    assert s["center"].shape == (c, 48, 48)
    assert s["offset"].shape == (2, 48, 48)
    assert s["weight"].shape == (48, 48)
    assert s["components"].shape == (48, 48) and s["wsss"].shape == (48, 48)
    assert s["labels"].shape == (c,)
    assert s["points"].shape == (0, 2)
    b = collate([td[(0, i)] for i in range(3)])
    assert b["image"].shape == (3, 3, 48, 48) and b["center"].shape == (3, c, 48, 48)
    assert b["points"].shape == (3, 1, 2) and bool((b["point_classes"] == -1).all())
    assert b["index"].tolist() == [0, 1, 2]


def test_unaugmented_sample_is_the_image_and_its_targets(stores):
    ds, pseudo, wsss = stores
    td = TrainData(ds, pseudo, wsss, crop=64, augment=False)
    for i in range(3):
        s = td[i]
        a = td.load(i)
        assert torch.allclose(s["image"], normalize_image(a["image"]))
        np.testing.assert_array_equal(s["semantic"].numpy(), a["semantic"])
        np.testing.assert_array_equal(s["weight"].numpy() > 0, a["instances"] > 0)
        # semantic = class of the pseudo instance wherever there is one
        fg = a["instances"] > 0
        np.testing.assert_array_equal(a["semantic"][fg], a["classes"][a["instances"][fg] - 1] + 1)


def test_augmentation_is_deterministic_per_seed_epoch_index(stores):
    ds, pseudo, wsss = stores
    td = TrainData(ds, pseudo, wsss, crop=48, seed=5)
    a, b = td[(2, 4)], td[(2, 4)]
    for k in ("image", "semantic", "center", "offset", "weight", "components"):
        assert torch.equal(a[k], b[k]), k
    # another process (a pickled copy, as a DataLoader worker gets) gives the same sample
    import pickle

    c = pickle.loads(pickle.dumps(td))[(2, 4)]
    assert torch.equal(a["image"], c["image"]) and torch.equal(a["center"], c["center"])
    # another epoch or another seed draws another augmentation
    assert not torch.equal(a["image"], td[(3, 4)]["image"])
    assert not torch.equal(a["image"], TrainData(ds, pseudo, wsss, crop=48, seed=6)[(2, 4)]["image"])
    r1, r2 = sample_rng(5, 2, 4).random(3), sample_rng(5, 2, 4).random(3)
    np.testing.assert_array_equal(r1, r2)


def test_augmented_centers_move_with_their_pixels(stores, tmp_path):
    """Scale, crop and flip move centers and pixels together. With centroid centers, every
    instance fully inside the crop still has its center at the centroid of its pixels (up to
    nearest-neighbour resampling), and the Gaussian peak sits on that instance."""
    ds, _, wsss = stores
    pseudo = tmp_path / "centroid.h5"
    run_transfer(ds, wsss.with_name("cues.h5"), wsss, pseudo, TransferOptions(center="centroid"))
    s_ = 48
    td = TrainData(ds, pseudo, wsss, crop=s_, seed=0)
    checked = flipped = 0
    yy, xx = torch.meshgrid(torch.arange(s_), torch.arange(s_), indexing="ij")
    for e in range(4):
        for i in range(len(ds)):
            s = td[(e, i)]
            fg = s["weight"] > 0
            # where each instance pixel points: its instance's center (x, y)
            tx = (xx + s["offset"][1])[fg]
            ty = (yy + s["offset"][0])[fg]
            px, py = xx[fg].float(), yy[fg].float()
            key = torch.round(tx * 64) * 100000 + torch.round(ty * 64)
            for k in torch.unique(key):
                m = key == k
                on_border = bool(((px[m] == 0) | (py[m] == 0) | (px[m] == s_ - 1) | (py[m] == s_ - 1)).any())
                if on_border or m.sum() < 20:
                    continue
                cx, cy = float(tx[m][0]), float(ty[m][0])
                assert abs(float(px[m].mean()) - cx) < 1.0 and abs(float(py[m].mean()) - cy) < 1.0
                checked += 1
            r = sample_rng(0, e, i)
            r.uniform(0.7, 1.3), r.random(), r.random()
            flipped += bool(r.random() < 0.5)
            # pseudo-instance pixels are labelled with a class and never ignored
            assert bool((s["semantic"][fg] != 255).all())
    assert checked > 20 and flipped > 5


def test_point_supervision_reads_every_point(stores):
    ds, pseudo, wsss = stores
    td = TrainData(ds, pseudo, wsss, crop=64, augment=False, sup="point")
    n_file = 0
    for i in range(len(ds)):
        s = td[i]
        n_file += s["points"].shape[0]
        # a Gaussian peak (value 1) at every point, in the point's class
        for (x, y), c in zip(s["points"].tolist(), s["point_classes"].tolist()):
            assert float(s["center"][c, int(round(y)), int(round(x))]) == pytest.approx(1.0)
    assert n_file > len(ds)  # several instances per image
    with pytest.raises(BestieError, match="nowhere: points folder not found"):
        TrainData(ds, pseudo, wsss, sup="point", points_dir=ds.root / "nowhere")
    other = TrainData(ds, pseudo, wsss, crop=64, augment=False, sup="point", points_dir=ds.root / "points")
    assert torch.equal(other[0]["center"], td[0]["center"])


def test_missing_image_in_store_is_refused(stores, tmp_path):
    ds, pseudo, wsss = stores
    w = StoreWriter(tmp_path / "short.h5", "wsss", {}, {}, ds.image_ids[:-1])
    for i in w.pending:
        w.add(i, {"mask": np.zeros((2, 2), np.uint8)})
    w.finish()
    with pytest.raises(BestieError, match="short.h5: --wsss: 1 of the 9 images of split 'train' are not in this store"):
        TrainData(ds, pseudo, tmp_path / "short.h5")
    with pytest.raises(BestieError, match="expected a 'wsss' store"):
        TrainData(ds, pseudo, pseudo)


def test_epoch_batches_resume_and_shard():
    full = EpochBatches(10, 3, seed=1)
    assert full.steps_per_epoch == 3
    it = iter(full)
    seq = [next(it) for _ in range(8)]
    # epoch 0 = steps 0-2, epoch 1 = steps 3-5; the 10th image of each epoch is dropped
    assert [e for e, _ in seq[0]] == [0, 0, 0] and [e for e, _ in seq[3]] == [1, 1, 1]
    ep0 = [i for b in seq[:3] for _, i in b]
    assert len(set(ep0)) == 9 and set(ep0) <= set(range(10))
    resumed = iter(EpochBatches(10, 3, seed=1, start=5))
    assert [next(resumed) for _ in range(3)] == seq[5:8]
    # two ranks: disjoint halves of the same permutation
    r0 = next(iter(EpochBatches(10, 2, seed=1, rank=0, world=2)))
    r1 = next(iter(EpochBatches(10, 2, seed=1, rank=1, world=2)))
    perm = EpochBatches(10, 1, seed=1).epoch_order(0)
    assert [i for _, i in r0] == perm[0:4:2] and [i for _, i in r1] == perm[1:4:2]
    with pytest.raises(BestieError, match="too few for batch size 8"):
        EpochBatches(5, 8)
