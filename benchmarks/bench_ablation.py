"""The paper's Table 3 ablation on the demo data, CPU: IAG and self-refinement, plus the upper bound.

Four trainings of the same network (``tiny`` backbone by default) with the same seed, batch size
and number of iterations, each a real ``bestie-train fit`` run followed by ``bestie-train
evaluate`` on the ``val`` split:

======== ============================================ ==========================================
run      labels                                       fit options
======== ============================================ ==========================================
full     pseudo.h5 + wsss.h5 of the image-level path  IAG + self-refinement + center clustering
no_ref   same                                         ``--no-refine`` (IAG only)
no_iag   same                                         ``--no-iag --no-refine``
gt       ``transfer --from-gt`` + ``wsss --from-gt``  full method (fully supervised upper bound)
======== ============================================ ==========================================

The paper's ordering (Table 3) is ``full > no_ref > no_iag`` and the upper bound above all of
them. The runs train with ``--val-split none``, so no model selection happens on the split that is
evaluated: ``best.pt`` is the final weights of each run.

``--work`` is a ``bestie-labels pipeline`` work folder (``demo/``, ``wsss.h5``, ``pseudo.h5``);
when those are missing, the label stages (demo-data, train-pam, cues, wsss, transfer) are run
into it through :mod:`bestie_labels.pipeline`. The GT labels are written under ``--out``
(``pseudo_gt.h5``, ``wsss_gt.h5``); ``--work`` is only read once it exists.

Writes ``<out>/<run>/`` (the run folder, ``fit.log``, ``metrics.json``) and ``<out>/ablation.json``
(metrics in percent, wall times in seconds, the command lines, whether the ordering holds), and
prints the table. A run whose ``metrics.json`` exists with the same command lines is reused, and
the fits run with ``--resume --force`` (continue an interrupted run, start over when the options
changed), so an interrupted benchmark can be rerun with the same options. On the shared 2-core machine keep
``--threads 1``; ``--jobs 2`` trains two runs at a time.

    .venv/bin/python benchmarks/bench_ablation.py --work /tmp/pw2 --out /tmp/abl --iters 300
        [--batch-size 8] [--seed 0] [--workers 1] [--threads 1] [--jobs 1] [--backbone tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bestie_labels.pipeline import PipelineConfig, run_stage

RUNS = ("full", "no_ref", "no_iag", "gt")
TITLES = {"full": "full (IAG + refine)", "no_ref": "w/o self-refinement", "no_iag": "w/o IAG, w/o refine",
          "gt": "upper bound (GT labels)"}
KEYS = ("mAP25", "mAP50", "mAP70", "mAP75")


def _bin(name: str) -> str:
    """The console script next to the running interpreter (the project's venv)."""
    cand = Path(sys.executable).with_name(name)
    return str(cand) if cand.exists() else name


def _run(argv: list[str], log: Path, env: dict) -> float:
    """Run ``argv`` with stdout+stderr to ``log``; return wall seconds; exit on failure."""
    t0 = time.perf_counter()
    with open(log, "w") as f:
        f.write(shlex.join(argv) + "\n")
        f.flush()
        r = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, env=env)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        tail = log.read_text().splitlines()[-5:]
        raise SystemExit(f"failed (exit {r.returncode}): {shlex.join(argv)}\n  see {log}\n  " + "\n  ".join(tail))
    return dt


def ensure_labels(work: Path, workers: int) -> None:
    """Run the pipeline's label stages into ``work`` when demo/, wsss.h5 or pseudo.h5 is missing."""
    if (work / "demo").is_dir() and (work / "wsss.h5").is_file() and (work / "pseudo.h5").is_file():
        return
    cfg = PipelineConfig(work=str(work), workers=workers)
    for stage in ("demo-data", "train-pam", "cues", "wsss", "transfer"):
        run_stage(cfg, stage)


def gt_labels(work: Path, out: Path, workers: int, env: dict) -> dict:
    """Write ``out/wsss_gt.h5`` and ``out/pseudo_gt.h5`` from the GT; return wall seconds of each."""
    L = _bin("bestie-labels")
    data = ["--data", str(work / "demo"), "--split", "train"]
    times = {}
    for name, argv in (("wsss_gt", [L, "wsss", *data, "--from-gt", "--out", str(out / "wsss_gt.h5"), "--force",
                                     "--workers", str(workers)]),
                       ("pseudo_gt", [L, "transfer", *data, "--from-gt", "--out", str(out / "pseudo_gt.h5"),
                                      "--force", "--workers", str(workers)])):
        times[name] = round(_run(argv, out / f"{name}.log", env), 1)
    return times


def run_one(name: str, args, work: Path, out: Path, env: dict) -> dict:
    """Fit and evaluate one ablation run; return its record for ``ablation.json``."""
    T = _bin("bestie-train")
    data = ["--data", str(work / "demo")]
    if name == "gt":
        pseudo, wsss = out / "pseudo_gt.h5", out / "wsss_gt.h5"
    else:
        pseudo, wsss = work / "pseudo.h5", work / "wsss.h5"
    flags = {"full": [], "no_ref": ["--no-refine"], "no_iag": ["--no-iag", "--no-refine"], "gt": []}[name]
    run = out / name
    fit = [T, "fit", *data, "--split", "train", "--pseudo", str(pseudo), "--wsss", str(wsss), "--out", str(run),
           "--backbone", args.backbone, "--device", "cpu", "--seed", str(args.seed), "--iters", str(args.iters),
           "--workers", str(args.workers), "--val-split", "none", "--resume", "--force", *flags]
    if args.batch_size:
        fit += ["--batch-size", str(args.batch_size)]
    metrics_path = run / "metrics.json"
    ev = [T, "evaluate", "--checkpoint", str(run / "best.pt"), *data, "--split", "val", "--device", "cpu",
          "--out", str(metrics_path)]
    record_path = out / f"{name}.json"
    if metrics_path.is_file() and record_path.is_file():
        old = json.loads(record_path.read_text())
        if old.get("fit_cmd") == shlex.join(fit) and old.get("eval_cmd") == shlex.join(ev):
            print(f"[{name}] reusing {metrics_path}", flush=True)
            return old
    run.mkdir(parents=True, exist_ok=True)
    metrics_path.unlink(missing_ok=True)
    print(f"[{name}] fit: {shlex.join(fit)}", flush=True)
    t_fit = _run(fit, run / "fit.log", env)
    print(f"[{name}] fit done in {t_fit:.0f} s; evaluating", flush=True)
    t_eval = _run(ev, run / "evaluate.log", env)
    m = json.loads(metrics_path.read_text())
    rec = {"name": name, "title": TITLES[name], **{k: m["voc"][k] for k in KEYS}, "AP": m["coco"]["AP"],
           "fit_s": round(t_fit, 1), "eval_s": round(t_eval, 1), "fit_cmd": shlex.join(fit), "eval_cmd": shlex.join(ev)}
    record_path.write_text(json.dumps(rec, indent=1))
    print(f"[{name}] mAP50 {rec['mAP50']:.1f}  ({t_eval:.0f} s to evaluate)", flush=True)
    return rec


def table(records: dict) -> str:
    """The results as a fixed-width table (percent; seconds)."""
    head = f"{'run':<26}" + "".join(f"{k:>8}" for k in KEYS) + f"{'AP':>8}{'fit s':>8}{'eval s':>8}"
    lines = [head, "-" * len(head)]
    for name in RUNS:
        r = records[name]
        lines.append(f"{r['title']:<26}" + "".join(f"{r[k]:8.1f}" for k in KEYS)
                     + f"{r['AP']:8.1f}{r['fit_s']:8.0f}{r['eval_s']:8.0f}")
    return "\n".join(lines)


def ordering(records: dict) -> dict:
    """Whether Table 3's ordering holds, per metric: full > no_ref > no_iag, and gt > full."""
    res = {}
    for k in (*KEYS, "AP"):
        v = {n: records[n][k] for n in RUNS}
        res[k] = {"full>no_ref": v["full"] > v["no_ref"], "no_ref>no_iag": v["no_ref"] > v["no_iag"],
                  "gt>full": v["gt"] > v["full"]}
    return res


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", required=True, help="pipeline work folder with demo/, wsss.h5, pseudo.h5 "
                                                 "(the label stages run into it when missing)")
    p.add_argument("--out", required=True, help="output folder (runs, GT labels, ablation.json)")
    p.add_argument("--iters", type=int, default=600, help="training iterations of every run (tiny default 600)")
    p.add_argument("--batch-size", type=int, default=0, help="batch size of every run (0 = fit's default)")
    p.add_argument("--backbone", default="tiny")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="fit/label --workers (1 = data loading in-process)")
    p.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads per run (0 = leave as is)")
    p.add_argument("--jobs", type=int, default=1, help="runs trained at the same time")
    p.add_argument("--runs", default=",".join(RUNS), help="comma-separated subset of " + ",".join(RUNS))
    args = p.parse_args(argv)

    work, out = Path(args.work).resolve(), Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if args.threads:
        for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[k] = str(args.threads)
    names = [n.strip() for n in args.runs.split(",") if n.strip()]
    bad = [n for n in names if n not in RUNS]
    if bad:
        raise SystemExit(f"unknown run(s) {bad}; choose from {','.join(RUNS)}")

    t0 = time.perf_counter()
    ensure_labels(work, args.workers)
    label_s = {}
    if "gt" in names:
        if (out / "pseudo_gt.h5").is_file() and (out / "wsss_gt.h5").is_file():
            print("reusing GT labels in", out, flush=True)
        else:
            label_s = gt_labels(work, out, args.workers, env)
            print("GT labels:", label_s, flush=True)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {n: pool.submit(run_one, n, args, work, out, env) for n in names}
        records = {n: f.result() for n, f in futures.items()}
    total = time.perf_counter() - t0

    result = {"work": str(work), "iters": args.iters, "batch_size": args.batch_size or "default",
              "backbone": args.backbone, "seed": args.seed, "threads": args.threads, "jobs": args.jobs,
              "runs": records, "gt_label_s": label_s, "total_s": round(total, 1)}
    if all(n in records for n in RUNS):
        print()
        print(table(records))
        result["ordering"] = ordering(records)
        o = result["ordering"]["mAP50"]
        print(f"\nTable 3 ordering on mAP50: full > w/o refine: {o['full>no_ref']}, "
              f"w/o refine > w/o IAG: {o['no_ref>no_iag']}, upper bound > full: {o['gt>full']}")
    (out / "ablation.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {out / 'ablation.json'} (total {total:.0f} s)")


if __name__ == "__main__":
    main()
