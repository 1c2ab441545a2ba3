"""Disk size of cues.h5 + wsss.h5 + pseudo.h5 for the 10,582-image VOC train_aug set.

Demo images are drawn at 500x500 and cropped to 500x375 (VOC size), written as a VOC tree, and
run through the real stages (cues from the GT points files, WSSS = GT class masks, transfer).
The store sizes are extrapolated linearly in the number of images. Goal: < 1 GB in total.

    .venv/bin/python benchmarks/bench_store_size.py [--images 300] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from bestie_labels.datasets import open_dataset
from bestie_labels.pipeline.demo_data import DEMO_CLASSES, format_points, instance_points, make_demo_dataset
from bestie_labels.formats.voc_writer import instance_classes, write_voc_tree
from bestie_labels.core.fileio import read_image, read_index_png
from bestie_labels.stages import run_cues, run_transfer, run_wsss

TRAIN_AUG = 10_582
GOAL_BYTES = 1 << 30


def voc_sized_tree(src: Path, dst: Path, height: int = 375) -> Path:
    """Crop every demo image of ``src`` (square) to its first ``height`` rows as a VOC tree."""
    stems = [p.stem for p in sorted((src / "JPEGImages").glob("*.jpg"))]
    images, cms, oms = [], [], []
    (dst / "points").mkdir(parents=True)
    for s in stems:
        img = read_image(src / "JPEGImages" / f"{s}.jpg")[:height]
        cm = read_index_png(src / "SegmentationClass" / f"{s}.png")[:height]
        om = read_index_png(src / "SegmentationObject" / f"{s}.png")[:height]
        ids = om[(om > 0) & (om != 255)]
        num = int(ids.max()) if ids.size else 0
        classes = instance_classes(cm, om, num)
        pts = instance_points(om, classes)
        pts = pts[pts[:, 2] >= 0]  # instances cropped away or left with void pixels only
        (dst / "points" / f"{s}.txt").write_text(format_points(pts))
        images.append(img)
        cms.append(cm)
        oms.append(om)
    return write_voc_tree(dst, stems, images, cms, oms, class_names=DEMO_CLASSES,
                          splits={"train": stems})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temporary one)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_store_size."))
    try:
        t0 = time.perf_counter()
        square = make_demo_dataset(work / "square", n_images=args.images, size=500, seed=0, force=True)
        root = voc_sized_tree(square, work / "voc")
        shutil.rmtree(square)
        t_data = time.perf_counter() - t0
        ds = open_dataset(root, split="train")
        h, w = ds.records[0].height, ds.records[0].width
        times = {}
        t = time.perf_counter()
        run_cues(ds, work / "cues.h5", workers=args.workers)
        times["cues"] = time.perf_counter() - t
        t = time.perf_counter()
        run_wsss(ds, work / "wsss.h5", from_gt=True, workers=args.workers)
        times["wsss"] = time.perf_counter() - t
        t = time.perf_counter()
        s = run_transfer(ds, work / "cues.h5", work / "wsss.h5", work / "pseudo.h5", workers=args.workers)
        times["transfer"] = time.perf_counter() - t
        n = len(ds)
        print(f"{n} demo images of {w}x{h} (data made in {t_data:.0f} s), {s.extra['instances']} pseudo instances "
              f"({s.extra['instances'] / n:.1f} per image)")
        total = 0
        print(f"{'store':<10} {'bytes/img':>10} {'for 10,582 imgs':>16} {'stage s/img':>12}")
        for name, stage in (("cues.h5", "cues"), ("wsss.h5", "wsss"), ("pseudo.h5", "transfer")):
            size = (work / name).stat().st_size
            est = size / n * TRAIN_AUG
            total += est
            print(f"{name:<10} {size / n:>10.0f} {est / 1e6:>13.1f} MB {times[stage] / n * 1e3:>9.1f} ms")
        raw = (h * w * (1 + 2)) * TRAIN_AUG
        print(f"{'total':<10} {'':>10} {total / 1e6:>13.1f} MB   (goal < {GOAL_BYTES / 1e6:.0f} MB; "
              f"uncompressed masks alone would be {raw / 1e9:.2f} GB; ratio {total / GOAL_BYTES:.2f} of the goal)")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
