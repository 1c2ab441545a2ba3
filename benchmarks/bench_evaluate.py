"""Speed of the VOC instance mAP against pycocotools' COCOeval on the same predictions.

Synthetic VOC-val-sized set: N images of 500x375 (default 1,449, as VOC2012 val), 1-5 GT
ellipses each over 20 classes, about 20 predictions per image (jittered, rescaled copies of
the GT, some with a wrong class, plus false positives elsewhere), all as compressed RLEs.
Times ``voc_instance_ap`` (4 IoU thresholds, IoUs included) and ``COCOeval.evaluate() +
accumulate()`` (10 thresholds, 4 area ranges) in the same run and prints the ratio.

    .venv/bin/python benchmarks/bench_evaluate.py [--images 1449] [--preds 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time

import cv2
import numpy as np
from pycocotools import mask as mask_utils
from tqdm import tqdm

from bestie_labels.evaluation.coco_ap import make_coco_eval
from bestie_labels.evaluation.voc_ap import voc_instance_ap

H, W, C = 375, 500, 20


def _encode_ellipses(params) -> list[dict]:
    """Compressed RLEs of filled ellipses, rows (cx, cy, ax, ay, angle), on an H x W image.

    Drawn in a (N, W, H) C-order buffer, whose transpose is the Fortran-order (H, W, N) array
    pycocotools encodes, so no copy is made (drawing in the transposed frame just mirrors the
    random shapes).
    """
    buf = np.zeros((len(params), W, H), np.uint8)
    for m, (cx, cy, ax, ay, ang) in zip(buf, params):
        cv2.ellipse(m, (int(cy), int(cx)), (max(int(ay), 2), max(int(ax), 2)), float(ang), 0, 360, 1, -1)
    return mask_utils.encode(buf.transpose(2, 1, 0))


def make_set(n_images: int, n_preds: int, seed: int):
    """Per-image lists: GT RLEs / classes, prediction RLEs / classes / scores."""
    rng = np.random.default_rng(seed)
    g_rles, g_cls, p_rles, p_cls, p_sc = [], [], [], [], []
    for _ in tqdm(range(n_images), desc="synthesising", unit="img"):
        g = int(rng.integers(1, 6))
        gp = np.c_[rng.uniform(40, W - 40, g), rng.uniform(40, H - 40, g),
                   rng.uniform(15, 120, g), rng.uniform(15, 100, g), rng.uniform(0, 180, g)]
        gc = rng.integers(0, C, g)
        # Predictions: jittered copies of the GT (several per GT), a few with a wrong class,
        # and the rest false positives anywhere.
        n_tp = min(n_preds, 2 * g)
        src = rng.integers(0, g, n_tp)
        pp = gp[src] * rng.normal(1, [0.05, 0.05, 0.15, 0.15, 0.1], (n_tp, 5))
        pc = np.where(rng.random(n_tp) < 0.9, gc[src], rng.integers(0, C, n_tp))
        n_fp = n_preds - n_tp
        fp = np.c_[rng.uniform(0, W, n_fp), rng.uniform(0, H, n_fp), rng.uniform(5, 80, n_fp),
                   rng.uniform(5, 80, n_fp), rng.uniform(0, 180, n_fp)]
        g_rles.append(_encode_ellipses(gp))
        g_cls.append(gc)
        p_rles.append(_encode_ellipses(np.r_[pp, fp]))
        p_cls.append(np.r_[pc, rng.integers(0, C, n_fp)])
        p_sc.append(np.r_[rng.uniform(0.3, 1.0, n_tp), rng.uniform(0.0, 0.7, n_fp)])
    return g_rles, g_cls, p_rles, p_cls, p_sc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1449)
    ap.add_argument("--preds", type=int, default=20, help="predictions per image")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1, help="best of R timings for each")
    args = ap.parse_args()

    g_rles, g_cls, p_rles, p_cls, p_sc = make_set(args.images, args.preds, args.seed)
    n_pred = sum(len(c) for c in p_cls)
    n_gt = sum(len(c) for c in g_cls)

    voc_t = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        voc = voc_instance_ap(p_rles, p_cls, p_sc, g_rles, g_cls, C)
        voc_t.append(time.perf_counter() - t0)

    ids = list(range(1, args.images + 1))
    coco_t = []
    for _ in range(args.repeats):
        ev = make_coco_eval(ids, [(H, W)] * args.images, p_rles, p_cls, p_sc, g_rles, g_cls,
                            [np.zeros(len(c), bool) for c in g_cls], C)
        with contextlib.redirect_stdout(io.StringIO()):
            t0 = time.perf_counter()
            ev.evaluate()
            ev.accumulate()
            coco_t.append(time.perf_counter() - t0)
            ev.summarize()

    tv, tc = min(voc_t), min(coco_t)
    print(f"{args.images} images of {W}x{H}, {n_gt} GT, {n_pred} predictions "
          f"({n_pred / args.images:.1f} per image), {C} classes")
    print("VOC mAP25/50/70/75 (%): " + " / ".join(f"{100 * v:.1f}" for v in voc["map"])
          + f"   COCO AP/AP50/AP75 (%): {100 * ev.stats[0]:.1f} / {100 * ev.stats[1]:.1f} / {100 * ev.stats[2]:.1f}")
    print(f"VOC evaluation (4 thresholds):          {tv:8.3f} s")
    print(f"pycocotools COCOeval evaluate+accumulate: {tc:8.3f} s")
    print(f"ratio VOC / COCOeval: {tv / tc:.3f}  (goal <= 1.0)")


if __name__ == "__main__":
    main()
