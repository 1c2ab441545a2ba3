"""Point supervision: where the offsets of a point-centered instance point, over seeds.

The official point-supervised target puts the center Gaussian at the labelled point and
regresses the offsets to the instance's centroid (``fit --point-offsets centroid``, the
default); before, both went to the point (``--point-offsets point``). For every seed the same
pseudo labels (``cues --method points`` + the pipeline's IRN class masks, or ``--wsss gt``: the
GT class masks) are trained on with ``fit --sup point --cues`` both ways, and ``last.pt`` is
scored on ``val`` (mAP50). Prints mean +- std, the paired gap and whether it exceeds the seed
spread; writes ``<out>/point_offsets.json``. Cached and resumable (``bench_ablation.Runner``).

    .venv/bin/python benchmarks/bench_point_offsets.py --work /tmp/pw --out /tmp/pto --seeds 0,1,2
        [--data DIR] [--wsss gt|irn] [--iters 600] [--threads 1] [--jobs 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ablation import Runner, _bin, fit_eval, thread_env  # noqa: E402

from bestie_labels.pipeline.plan import PipelineConfig, run_stage  # noqa: E402

MODES = ("centroid", "point")


def one_seed(args, run: Runner, root: Path, shared: Path, seed: int) -> dict:
    """``{mode: mAP50}`` of one seed."""
    L = _bin("bestie-labels")
    data = ["--data", str(root), "--split", "train"]
    cues, wsss, pseudo = shared / "cues_points.h5", shared / f"wsss_{args.wsss}.h5", shared / "pseudo_points.h5"
    sd = Path(args.out) / f"seed{seed}"
    sd.mkdir(parents=True, exist_ok=True)
    if args.wsss == "irn":  # the IRN class masks of this seed's classifier
        pam, irn = sd / "pam.pt", sd / "irn.pt"
        run([L, "train-pam", *data, "--out", str(pam), "--backbone", "tiny", "--seed", str(seed), "--force"], pam,
            f"s{seed}-train-pam")
        run([L, "train-irn", *data, "--checkpoint", str(pam), "--out", str(irn), "--seed", str(seed), "--force"],
            irn, f"s{seed}-train-irn")
        wsss = run([L, "wsss", *data, "--checkpoint", str(irn), "--out", str(sd / "wsss_irn.h5"), "--force"],
                   sd / "wsss_irn.h5", f"s{seed}-wsss")
        pseudo = run([L, "transfer", *data, "--cues", str(cues), "--wsss", str(wsss), "--out",
                      str(sd / "pseudo_points.h5"), "--force"], sd / "pseudo_points.h5", f"s{seed}-transfer")
    return {m: fit_eval(run, root, pseudo, wsss, sd / f"fit_{m}", seed, args.iters,
                        ["--sup", "point", "--cues", str(cues), "--point-offsets", m], f"s{seed}-{m}")
            for m in MODES}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", default=None, help="pipeline work folder with demo/ (made when missing)")
    p.add_argument("--data", default=None, help="a VOC tree with points/ instead of the demo")
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--wsss", default="gt", choices=("gt", "irn"), help="class masks: GT (default) or IRN")
    p.add_argument("--iters", type=int, default=600)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--jobs", type=int, default=1)
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    if args.data:
        root = Path(args.data).resolve()
    else:
        work = Path(args.work or out / "work").resolve()
        if not (work / "demo").is_dir():
            run_stage(PipelineConfig(work=str(work)), "demo-data")
        root = work / "demo"
    t0 = time.perf_counter()
    run = Runner(thread_env(args.threads), out / "logs")
    L, data = _bin("bestie-labels"), ["--data", str(root), "--split", "train"]
    run([L, "cues", *data, "--method", "points", "--out", str(out / "cues_points.h5"), "--force"],
        out / "cues_points.h5", "cues")
    run([L, "wsss", *data, "--from-gt", "--out", str(out / "wsss_gt.h5"), "--force"], out / "wsss_gt.h5", "wsss-gt")
    run([L, "transfer", *data, "--cues", str(out / "cues_points.h5"), "--wsss", str(out / "wsss_gt.h5"), "--out",
         str(out / "pseudo_points.h5"), "--force"], out / "pseudo_points.h5", "transfer-gt")
    seeds = [int(s) for s in args.seeds.split(",")]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        res = dict(zip(seeds, pool.map(lambda s: one_seed(args, run, root, out, s), seeds)))
    a = {m: np.array([res[s][m] for s in seeds]) for m in MODES}
    sd = {m: float(a[m].std(ddof=1)) if len(seeds) > 1 else 0.0 for m in MODES}
    gap = float((a["centroid"] - a["point"]).mean())
    summary = {m: {"values": a[m].tolist(), "mean": float(a[m].mean()), "std": sd[m]} for m in MODES}
    summary["gap centroid - point"] = gap
    summary["exceeds spread"] = bool(len(seeds) > 1 and abs(gap) > sd["centroid"] + sd["point"])
    for m in MODES:
        print(f"--point-offsets {m:<8} mAP50 {summary[m]['mean']:6.2f} +- {sd[m]:5.2f}  {a[m].round(2).tolist()}")
    print(f"gap centroid - point {gap:+.2f} ({'beyond' if summary['exceeds spread'] else 'within'} the seed spread)")
    result = {"seeds": seeds, "wsss": args.wsss, "iters": args.iters, "data": str(root), "summary": summary,
              "total_s": round(time.perf_counter() - t0, 1)}
    (out / "point_offsets.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {out / 'point_offsets.json'}")


if __name__ == "__main__":
    main()
