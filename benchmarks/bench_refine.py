"""Cost of online self-refinement against a training iteration of the same batch.

Builds the trainer network (``tiny`` backbone by default), a synthetic batch of ``B`` crops
(1-4 ellipses of 2-3 classes per image as the WSSS mask, their components, image-level labels,
pseudo targets from :func:`bestie_train.targets.make_targets`), and times, in the same run:

* one iteration without refinement: forward, :func:`bestie_train.losses.bestie_loss`,
  backward, Adam step;
* :func:`bestie_train.refine.refine_targets` on the detached outputs of that batch, twice:
  on the raw network outputs, and on "trained-like" outputs (Gaussian peaks and exact offsets
  at every object, so that every region has centers to group).

The three are timed in turn ``--repeats`` times; it prints the median and the minimum of each
and the refinement's share of an iteration with refinement, ``refine / (iteration + refine)``.
On a shared, loaded machine use ``--threads 1`` (thread oversubscription slows the many small
operations of the refinement far more than the convolutions).

    .venv/bin/python benchmarks/bench_refine.py [--backbone tiny] [--batch 8] [--crop 128]
        [--classes 20] [--device cpu] [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np
import torch

from bestie_train.targets import make_targets
from bestie_train.losses import bestie_loss
from bestie_labels.algorithms.components import component_map
from bestie_train.refine import refine_targets


def synthetic_batch(b: int, s: int, c: int, seed: int, device) -> dict:
    """WSSS masks of random ellipses, their components, labels and pseudo targets."""
    rng = np.random.default_rng(seed)
    wsss = np.zeros((b, s, s), np.int64)
    inst = np.zeros((b, s, s), np.int64)
    labels = np.zeros((b, c), np.float32)
    centers, classes = [], []
    for i in range(b):
        cls = rng.choice(c, size=rng.integers(1, 3), replace=False)
        labels[i, cls] = 1
        cen, cl = [], []
        for n in range(rng.integers(1, 5)):
            k = int(rng.choice(cls))
            m = np.zeros((s, s), np.uint8)
            cx, cy = rng.integers(s // 8, s - s // 8, 2)
            ax, ay = rng.integers(s // 12, s // 4, 2)
            cv2.ellipse(m, (int(cx), int(cy)), (int(ax), int(ay)), float(rng.uniform(0, 180)), 0, 360, 1, -1)
            m = m.astype(bool) & (inst[i] == 0)
            wsss[i][m] = k + 1
            inst[i][m] = len(cen) + 1
            ys, xs = np.nonzero(m)
            cen.append((xs.mean() if len(xs) else cx, ys.mean() if len(ys) else cy))
            cl.append(k)
        centers.append(torch.tensor(cen, dtype=torch.float32))
        classes.append(torch.tensor(cl))
    comps = np.stack([component_map(wsss[i], labels[i] > 0) for i in range(b)])
    inst_t = torch.from_numpy(inst)
    t = [make_targets(inst_t[i], centers[i], classes[i], c) for i in range(b)]
    batch = {"wsss": torch.from_numpy(wsss), "components": torch.from_numpy(comps),
             "labels": torch.from_numpy(labels), "semantic": torch.from_numpy(wsss),
             "center": torch.stack([x["center"] for x in t]), "offset": torch.stack([x["offset"] for x in t]),
             "weight": torch.stack([x["weight"] for x in t])}
    return {k: v.to(device) for k, v in batch.items()}


def trained_like(batch: dict, c: int) -> dict:
    """Outputs a well-trained network would give: confident semantic logits, the pseudo
    center heatmaps and offsets."""
    sem = torch.nn.functional.one_hot(batch["wsss"].clamp(max=c), c + 1).permute(0, 3, 1, 2).float() * 4.0
    return {"semantic": sem, "center": batch["center"].clone(), "offset": batch["offset"].clone()}


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeats: int, device) -> float:
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="tiny")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)

    from bestie_train.model import build_model

    model = build_model(args.backbone, args.classes, verbose=False).to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=5e-5)
    batch = synthetic_batch(args.batch, args.crop, args.classes, args.seed, dev)
    x = torch.randn(args.batch, 3, args.crop, args.crop, device=dev)
    pseudo = {k: batch[k] for k in ("center", "offset", "weight")}
    state = {}

    def iteration():
        out = model(x)
        loss = bestie_loss(out, batch["semantic"], pseudo, None)
        opt.zero_grad(set_to_none=True)
        loss["total"].backward()
        opt.step()
        state["out"] = {k: v.detach() for k, v in out.items()}

    iteration()  # warm-up
    raw = state["out"]
    like = trained_like(batch, args.classes)
    refine_targets(raw, batch)  # warm-up
    # interleaved, so that a varying machine load hits all three alike
    runs = {"iter": [], "raw": [], "like": []}
    for _ in range(args.repeats):
        runs["iter"].append(timed(iteration, 1, dev))
        runs["raw"].append(timed(lambda: refine_targets(raw, batch), 1, dev))
        runs["like"].append(timed(lambda: refine_targets(like, batch), 1, dev))
    n_inst = int(sum(int(w.max()) for w in batch["components"]))
    print(f"device {dev}, threads {torch.get_num_threads()}, backbone {args.backbone}, "
          f"batch {args.batch} x {args.crop}x{args.crop}, C={args.classes}, {n_inst} WSSS regions, "
          f"{args.repeats} interleaved repeats (median / min)")
    med = {k: statistics.median(v) for k, v in runs.items()}
    low = {k: min(v) for k, v in runs.items()}
    print(f"iteration (forward + loss + backward + Adam): {med['iter'] * 1000:8.1f} / {low['iter'] * 1000:8.1f} ms")
    for key, name in (("raw", "refinement, raw outputs"), ("like", "refinement, trained-like outputs")):
        share = [100 * t[key] / (t["iter"] + t[key]) for t in (med, low)]
        print(f"{name:34s}: {med[key] * 1000:8.1f} / {low[key] * 1000:8.1f} ms   share of an iteration "
              f"with refinement: {share[0]:5.1f}% / {share[1]:5.1f}%")


if __name__ == "__main__":
    main()
