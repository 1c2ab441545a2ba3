"""Speed of the HTML report of the label stages (``report --html``) on 10,000 images of 500x375.

A pool of demo images (500x500 cropped to 500x375, VOC size) goes through the real stages
(cues from the points, WSSS = GT class masks, transfer); the split of ``--images`` images is made
by repeating the pool's files and store entries under new ids (the drawing cost per image is the
same). Then:

1. a first report (every image drawn: photo, four layers, thumbnail, page): images/s, against a
   reference loop in the same run that only reads each image's inputs (image, three stores, GT);
2. a second report with the same stores: files rewritten (goal: 0);
3. a third after the pseudo instances of ``--changed`` images are edited: files rewritten
   (goal: those images' files and the split-wide pages only).

Goal: >= 30 images/s with 2 workers on 2 cores.

    .venv/bin/python benchmarks/bench_html.py [--images 10000] [--workers 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_store_size import voc_sized_tree  # noqa: E402

from bestie_labels.datasets import open_dataset  # noqa: E402
from bestie_labels.pipeline.demo_data import make_demo_dataset  # noqa: E402
from bestie_labels.stages import run_cues, run_transfer, run_wsss  # noqa: E402
from bestie_labels.store.checks import read_cues, read_pseudo, read_wsss  # noqa: E402
from bestie_labels.store.file import Store, StoreWriter  # noqa: E402
from bestie_labels.viz.html.labels_summary import write_labels_report  # noqa: E402

GOAL = 30.0


def pool_run(work: Path, n: int, workers: int) -> Path:
    """``n`` demo images of 500x375 and their stores in ``work/pool``."""
    square = make_demo_dataset(work / "square", n_images=n, size=500, seed=0, force=True)
    root = voc_sized_tree(square, work / "pool")
    shutil.rmtree(square)
    ds = open_dataset(root, split="train")
    run_cues(ds, work / "pool_cues.h5", workers=workers)
    run_wsss(ds, work / "pool_wsss.h5", from_gt=True, workers=workers)
    run_transfer(ds, work / "pool_cues.h5", work / "pool_wsss.h5", work / "pool_pseudo.h5", workers=workers)
    return root


def big_tree(pool: Path, dst: Path, n: int) -> list[str]:
    """A VOC tree of ``n`` images whose files are hard links to the pool's, in turn."""
    src = sorted(p.stem for p in (pool / "JPEGImages").glob("*.jpg"))
    stems = [f"2100_{i:06d}" for i in range(n)]
    for sub, ext in (("JPEGImages", "jpg"), ("Annotations", "xml"), ("SegmentationClass", "png"),
                     ("SegmentationObject", "png")):
        (dst / sub).mkdir(parents=True)
        for i, s in enumerate(stems):
            os.link(pool / sub / f"{src[i % len(src)]}.{ext}", dst / sub / f"{s}.{ext}")
    (dst / "ImageSets" / "Segmentation").mkdir(parents=True)
    (dst / "ImageSets" / "Segmentation" / "train.txt").write_text("".join(s + "\n" for s in stems))
    shutil.copy(pool / "class_names.txt", dst / "class_names.txt")
    return src


def big_store(pool_store: Path, out: Path, ds, src: list[str], edit: set[int] = frozenset()) -> None:
    """The pool store's entries repeated for ``ds``; images ``edit`` get their pseudo instances removed."""
    with Store(pool_store) as s:
        stage, options = s.stage, s.options
        entries = {i: s.encoded(i) for i in src}
    tmp = out.with_name("new-" + out.name)  # a store of the same options would count as done
    w = StoreWriter(tmp, stage, options, {"data": ds.fingerprint()}, ds.image_ids, force=True)
    for k, image_id in enumerate(ds.image_ids):
        arrays = entries[src[k % len(src)]]
        if k in edit:
            h, wd = arrays["instances"].shape
            arrays = dict(instances=np.zeros((h, wd), np.uint16), classes=np.zeros(0, np.int32),
                          centers=np.zeros((0, 2), np.float32), scores=np.zeros(0, np.float32))
        w.add(image_id, arrays)
    w.finish()
    os.replace(tmp, out)


def read_only(ds, work: Path, n: int) -> float:
    """Images/s of reading each image's inputs alone (one process): the reference."""
    c = ds.num_classes
    t = time.perf_counter()
    with Store(work / "pseudo.h5") as p, Store(work / "wsss.h5") as w, Store(work / "cues.h5") as q:
        for rec in ds.records[:n]:
            ds.load_image(rec), ds.load_gt(rec)
            read_pseudo(p, rec, c), read_wsss(w, rec, c), read_cues(q, rec, c)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--pool", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--changed", type=int, default=10)
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temporary one)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_html."))
    try:
        t0 = time.perf_counter()
        pool = pool_run(work, args.pool, args.workers)
        src = big_tree(pool, work / "voc", args.images)
        ds = open_dataset(work / "voc", split="train")
        for name in ("cues", "wsss", "pseudo"):
            big_store(work / f"pool_{name}.h5", work / f"{name}.h5", ds, src)
        print(f"{len(ds)} images of {ds.records[0].width}x{ds.records[0].height} ({args.pool} distinct), "
              f"data made in {time.perf_counter() - t0:.0f} s; {os.cpu_count()} CPUs, {args.workers} workers, "
              f"load average {os.getloadavg()[0]:.1f} (other processes share the CPUs)")
        ref = read_only(ds, work, min(500, len(ds)))

        def report():
            t = time.perf_counter()
            r = write_labels_report(ds, work / "pseudo.h5", work / "html", wsss=work / "wsss.h5",
                                    cues=work / "cues.h5", workers=args.workers)
            return r, time.perf_counter() - t

        r1, t1 = report()
        rate = len(ds) / t1
        print(f"first run : {t1:7.1f} s  {rate:6.1f} images/s  ({r1['written']} files written; goal >= {GOAL:g} "
              f"images/s: {'met' if rate >= GOAL else 'NOT met'})")
        print(f"reference : reading the inputs alone, 1 process: {ref:.1f} images/s "
              f"(report / reference = {rate / ref:.2f})")
        r2, t2 = report()
        print(f"second run: {t2:7.1f} s  same stores: {r2['written']} files rewritten (goal 0)")
        edit = set(np.linspace(0, len(ds) - 1, args.changed).round().astype(int).tolist())
        big_store(work / "pool_pseudo.h5", work / "pseudo.h5", ds, src, edit)
        r3, t3 = report()
        print(f"third run : {t3:7.1f} s  pseudo instances of {len(edit)} images changed: {r3['written']} files "
              f"rewritten (at most 7 per changed image: pseudo and GT layers, thumbnail, page; + data.js, "
              "index.html, plots)")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
