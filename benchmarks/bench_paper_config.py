"""The paper's configuration, measured: VGG-16 PAM training, HRNet-W48 training, prediction.

Builds a VOC-sized tree (demo images drawn at 500 px, cut to 500x375 as most VOC photos;
GT points as cues and GT class masks as the WSSS: the costs do not depend on where the
labels come from), then runs each phase in its own process so that its peak memory
is its own:

* ``pam``: ``train-pam --backbone vgg16`` (official recipe: input 384, crop 321, batch 5) for
  one epoch of ``2 x batch`` images: seconds per iteration (data loading included);
* ``fit``: ``fit --backbone hrnet_w48 --crop 416 --batch-size 2 --cues cues.h5`` (the paper
  recipe: per-crop transfer, official scale pipeline, photometric distortion) with refinement, a few
  iterations: seconds per iteration (median over the iterations after the first, data
  loading included);
* ``predict``: the prediction of one 500x375 image with the W48 network of ``fit``, with and
  without flip: seconds per image (the checkpoint load is reported apart);
* ``loader``: the training loader's samples per second on one core (one process, one torch
  and OpenCV thread) at VOC size, crop 416, paper recipe: reading, photometric distortion,
  resize, scale, crop, flip, the per-crop transfer and targets of
  :class:`bestie_train.data.TrainData`.

Peak memory is the process's peak resident set (``ru_maxrss``; it includes Python and torch,
about 0.3-0.4 GB) and, on CUDA, ``torch.cuda.max_memory_allocated``. With ``--device cuda``
the ``fit`` phase also reports iterations/s at batch 16 with and without refinement and the
loader's share of an iteration (the time the loop waits for a batch / the iteration time).

    .venv/bin/python benchmarks/bench_paper_config.py [--device cpu|cuda] [--fit-iters 3]
        [--threads N] [--work DIR] [--phases pam,fit,predict,loader]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

H, W = 375, 500


def make_voc_tree(work: Path, n_images: int) -> Path:
    """``n_images`` demo images of 500x375 (75% train) with their GT points (those left in the
    cut image) as cues, the GT class masks as WSSS, and the pseudo labels transferred from them
    (the per-crop transfer of ``fit --cues`` needs a ``pseudo.h5`` made from ``cues.h5``)."""
    from PIL import Image

    from bestie_labels.datasets import open_dataset
    from bestie_labels.pipeline.demo_data import DEMO_CLASSES, make_demo_dataset, write_voc_tree
    from bestie_labels.formats.points import read_points, write_points
    from bestie_labels.stages import run_cues, run_transfer, run_wsss

    root = work / "voc"
    if (work / "pseudo.h5").is_file():
        return root
    big = make_demo_dataset(work / "square", n_images=n_images, size=W, seed=0)
    stems = sorted(p.stem for p in (big / "JPEGImages").glob("*.jpg"))
    imgs, cms, oms = [], [], []
    for s in stems:
        imgs.append(np.asarray(Image.open(big / "JPEGImages" / f"{s}.jpg").convert("RGB"))[:H])
        cms.append(np.asarray(Image.open(big / "SegmentationClass" / f"{s}.png"))[:H])
        oms.append(np.asarray(Image.open(big / "SegmentationObject" / f"{s}.png"))[:H])
    n_train = round(0.75 * len(stems))
    write_voc_tree(root, stems, imgs, cms, oms, class_names=DEMO_CLASSES,
                   splits={"train": stems[:n_train], "val": stems[n_train:], "one": stems[n_train:n_train + 1]})
    for s in stems:
        pts = read_points(big / "points" / f"{s}.txt", W, W, len(DEMO_CLASSES))
        write_points(root / "points" / f"{s}.txt", pts[pts[:, 1] < H])
    ds = open_dataset(root, split="train")
    run_cues(ds, work / "cues.h5", method="points", points_dir=root / "points")
    run_wsss(ds, work / "wsss.h5", from_gt=True)
    run_transfer(ds, work / "cues.h5", work / "wsss.h5", work / "pseudo.h5")
    return root


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def gpu_peak_gb(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None


def phase_pam(a, work: Path) -> dict:
    from bestie_labels.classifier.train import train_pam
    from bestie_labels.datasets import open_dataset

    ds = open_dataset(work / "voc", split="train")
    batch = 5
    r = train_pam(ds, work / "pam.pt", backbone="vgg16", epochs=1, batch_size=batch, device=a.device,
                  force=True, log=lambda s: None)
    sec = r["history"][-1]["seconds"] / (len(ds) // batch)  # the last partial batch is dropped
    return {"phase": "train-pam vgg16 (batch 5, crop 321)", "s_per_iter": sec}


def _fit(a, work: Path, out: Path, iters: int, batch: int, refine: bool = True) -> list[float]:
    """Seconds of each training iteration after the first (data loading included): the time
    between consecutive ``metrics.jsonl`` rows (one per iteration), taken when each is written."""
    from bestie_labels.datasets import open_dataset
    from bestie_train import fit as fit_module

    stamps: list[float] = []
    append = fit_module.MetricsLog.append

    def timed_append(self, row):
        if row.get("kind") == "train":
            stamps.append(time.perf_counter())
        return append(self, row)

    fit_module.MetricsLog.append = timed_append
    try:
        ds = open_dataset(work / "voc", split="train")
        fit_module.fit(ds, work / "pseudo.h5", work / "wsss.h5", out, backbone="hrnet_w48", crop=416,
                       batch_size=batch, iters=iters, warmup=0, log_every=1, ckpt_every=10**6, val_every=10**6,
                       device=a.device, refine=refine, force=True, progress=False, workers=a.workers,
                       cues=str(work / "cues.h5"), recipe="paper")
    finally:
        fit_module.MetricsLog.append = append
    return [t1 - t0 for t0, t1 in zip(stamps, stamps[1:])]


def phase_fit(a, work: Path) -> dict:
    times = _fit(a, work, work / "run", a.fit_iters, 2)
    res = {"phase": "fit hrnet_w48 (batch 2, crop 416, refine)", "s_per_iter": statistics.median(times)}
    if a.device == "cuda":
        for refine in (True, False):
            t = statistics.median(_fit(a, work, work / f"run16_{refine}", a.fit_iters, 16, refine))
            res[f"it_per_s_b16_{'refine' if refine else 'no_refine'}"] = 1 / t
        res["loader_share_b16"] = batch_seconds(a, work, 16) * res["it_per_s_b16_refine"]
    return res


def batch_seconds(a, work: Path, batch: int) -> float:
    """Mean seconds to get one batch from a DataLoader with ``--workers`` processes, alone (an
    upper bound of the wait in training, where loading overlaps the GPU's work)."""
    import torch

    from bestie_labels.datasets import open_dataset
    from bestie_train.batches import collate
    from bestie_train.data import TrainData

    ds = open_dataset(work / "voc", split="train")
    data = TrainData(ds, work / "pseudo.h5", work / "wsss.h5", crop=416, cues=work / "cues.h5", recipe="paper")
    loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, num_workers=a.workers,
                                         collate_fn=collate)
    n, t0 = 0, time.perf_counter()
    while n < a.fit_iters:
        for _ in loader:
            n += 1
            if n == a.fit_iters:
                break
    return (time.perf_counter() - t0) / n


def phase_predict(a, work: Path) -> dict:
    """Seconds per image of ``predict`` (network at full resolution, center NMS, grouping,
    scoring), the model loaded once; and the load itself."""
    from bestie_labels.datasets import open_dataset
    from bestie_train.predict import iter_predictions, load_model

    ds = open_dataset(work / "voc", split="one")
    t = time.perf_counter()
    model = load_model(work / "run" / "last.pt", ds, a.device)
    res = {"phase": f"predict hrnet_w48, one {W}x{H} image", "model_load_s": time.perf_counter() - t}
    list(iter_predictions(model, ds, device=a.device, progress=False))  # first-run costs
    for flip in (False, True):
        t = time.perf_counter()
        list(iter_predictions(model, ds, device=a.device, flip=flip, progress=False))
        res[f"s_per_image{'_flip' if flip else ''}"] = time.perf_counter() - t
    return res


def phase_loader(a, work: Path) -> dict:
    import cv2
    import torch

    from bestie_labels.datasets import open_dataset
    from bestie_train.data import TrainData

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    ds = open_dataset(work / "voc", split="train")
    data = TrainData(ds, work / "pseudo.h5", work / "wsss.h5", crop=416, cues=work / "cues.h5", recipe="paper")
    data[(0, 0)]
    n = max(a.loader_samples, 1)
    t = time.perf_counter()
    for i in range(n):
        data[(1, i % len(data))]
    dt = time.perf_counter() - t
    return {"phase": f"training loader, {W}x{H} -> crop 416, 1 core", "samples_per_s_per_core": n / dt}


PHASES = {"pam": phase_pam, "fit": phase_fit, "predict": phase_predict, "loader": phase_loader}


def run_child(a, work: Path) -> None:
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    res = PHASES[a.child](a, work)
    res["peak_rss_gb"] = peak_rss_gb()
    res["peak_gpu_gb"] = gpu_peak_gb(a.device)
    print("RESULT " + json.dumps(res))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--fit-iters", type=int, default=3)
    p.add_argument("--loader-samples", type=int, default=20)
    p.add_argument("--images", type=int, default=14, help="images of the VOC-sized tree (75%% train: 2 PAM batches)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--work", default=None, help="folder to keep the tree and runs in (default: a temp dir)")
    p.add_argument("--phases", default="pam,fit,predict,loader")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    work = Path(a.work or tempfile.mkdtemp(prefix="bench_paper_"))
    if a.child:
        return run_child(a, work)
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    make_voc_tree(work, a.images)
    print(f"VOC-sized tree in {work} ({time.perf_counter() - t:.1f} s)", flush=True)
    rows = []
    for ph in a.phases.split(","):
        cmd = [sys.executable, __file__, "--child", ph, "--work", str(work), "--device", a.device,
               "--fit-iters", str(a.fit_iters), "--loader-samples", str(a.loader_samples),
               "--workers", str(a.workers)] + (["--threads", str(a.threads)] if a.threads else [])
        out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
        res = [ln[7:] for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
        if out.returncode or not res:
            sys.exit(f"phase {ph} failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(res[-1]))
        print(json.dumps(rows[-1]), flush=True)
    print("\n| phase | time | peak RSS (GB) | peak GPU (GB) |\n|---|---|---|---|")
    for r in rows:
        timing = ", ".join(f"{k} {v:.3g}" for k, v in r.items()
                           if k not in ("phase", "peak_rss_gb", "peak_gpu_gb") and v is not None)
        gpu = "-" if r["peak_gpu_gb"] is None else f"{r['peak_gpu_gb']:.2f}"
        print(f"| {r['phase']} | {timing} | {r['peak_rss_gb']:.2f} | {gpu} |")


if __name__ == "__main__":
    main()
