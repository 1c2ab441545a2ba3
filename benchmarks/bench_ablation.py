"""The paper's ablations on the demo data, CPU, over several seeds: mean +- std and which gaps
are larger than the spread between seeds.

For every seed ``s`` (``--seeds 0,1,2``) the classifier (``train-pam --seed s``), the IRN boundary
network (``train-irn --seed s``) and every network (``fit --seed s``) are trained again on the
same demo data (the ``demo/`` of ``--work``, made by ``bestie-labels pipeline`` when missing):

========== ================================================================================
part       what is compared (all other stages at the pipeline's defaults)
========== ================================================================================
fig6       cues from CAM (``cues --method cam``) vs PAM: true-positive pseudo instances
           (IoU >= 0.5, ``report``) with the built-in IRN class masks (paper Figure 6)
table4     class masks from IRN (built-in default) vs CAM (``wsss --method cam``) vs GT class
           masks (``wsss --from-gt``), PAM cues: WSSS mIoU (``report --wsss``), pseudo TP and
           precision, and mAP50 of the full method trained on them (paper Table 4)
table3     full (IAG + self-refinement) / ``--no-refine`` / ``--no-iag --no-refine`` / GT
           labels (``transfer --from-gt`` + ``wsss --from-gt``): mAP50 (paper Table 3)
========== ================================================================================

A difference between two rows is called larger than the seed spread when ``|mean_a - mean_b|
> std_a + std_b`` (sample standard deviations over the seeds); the per-seed differences (both
rows of a seed share its classifier) and whether they keep one sign are printed beside it. Every command's output is
cached under ``--out`` with its command line (``<file>.cmd``) and reused when the command is the
same, so an interrupted benchmark resumes. Writes ``<out>/ablation.json`` and prints the
tables.

    .venv/bin/python benchmarks/bench_ablation.py --work /tmp/pw --out /tmp/abl --seeds 0,1,2
        [--parts fig6,table4,table3] [--iters 600] [--pam-epochs N] [--irn-epochs N] [--threads 1] [--jobs 1]
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

import numpy as np

from bestie_labels.pipeline.plan import CUE_MIN_CONF, PipelineConfig, run_stage

PARTS = ("fig6", "table4", "table3")


def _bin(name: str) -> str:
    """The console script next to the running interpreter (the project's venv)."""
    cand = Path(sys.executable).with_name(name)
    return str(cand) if cand.exists() else name


class Runner:
    """Runs a command unless its output exists with the same command line (``<out>.cmd``)."""

    def __init__(self, env: dict, log_dir: Path) -> None:
        self.env, self.log_dir, self.seconds = env, log_dir, {}

    def __call__(self, argv: list[str], output: Path, name: str) -> Path:
        stamp = output.with_name(output.name + ".cmd")
        cmd = shlex.join(argv)
        if output.exists() and stamp.is_file() and stamp.read_text() == cmd:
            return output
        log = self.log_dir / f"{name}.log"
        t0 = time.perf_counter()
        with open(log, "w") as f:
            f.write(cmd + "\n")
            f.flush()
            r = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, env=self.env)
        if r.returncode != 0:
            tail = log.read_text().splitlines()[-5:]
            raise SystemExit(f"failed (exit {r.returncode}): {cmd}\n  see {log}\n  " + "\n  ".join(tail))
        self.seconds[name] = round(time.perf_counter() - t0, 1)
        stamp.write_text(cmd)
        return output


def label_stages(run: Runner, data: list[str], sd: Path, seed: int, shared: Path, parts: set, args) -> dict:
    """Classifier, IRN, cues, class masks, transfers and reports of one seed; returns the paths."""
    L = _bin("bestie-labels")
    pam, irn = sd / "pam.pt", sd / "irn.pt"
    run([L, "train-pam", *data, "--out", str(pam), "--backbone", "tiny", "--seed", str(seed), "--force"]
        + (["--epochs", str(args.pam_epochs)] if args.pam_epochs else []), pam, f"s{seed}-train-pam")
    run([L, "train-irn", *data, "--checkpoint", str(pam), "--out", str(irn), "--seed", str(seed), "--force"]
        + (["--epochs", str(args.irn_epochs)] if args.irn_epochs else []), irn, f"s{seed}-train-irn")
    cues = {m: run([L, "cues", *data, "--method", m, "--checkpoint", str(pam), "--out", str(sd / f"cues_{m}.h5"),
                    "--min-conf", str(CUE_MIN_CONF["cpu"]), "--force"], sd / f"cues_{m}.h5", f"s{seed}-cues-{m}")
            for m in ("pam", "cam")}
    wsss = {"irn": run([L, "wsss", *data, "--checkpoint", str(irn), "--out", str(sd / "wsss_irn.h5"), "--force"],
                       sd / "wsss_irn.h5", f"s{seed}-wsss-irn"),
            "cam": run([L, "wsss", *data, "--method", "cam", "--checkpoint", str(pam), "--out",
                        str(sd / "wsss_cam.h5"), "--force"], sd / "wsss_cam.h5", f"s{seed}-wsss-cam"),
            "gt": shared / "wsss_gt.h5"}
    combos = [("pam", "irn"), ("pam", "cam"), ("pam", "gt")] + ([("cam", "irn")] if "fig6" in parts else [])
    pseudo, reports = {}, {}
    for c, w in combos:
        p = sd / f"pseudo_{c}_{w}.h5"
        pseudo[(c, w)] = run([L, "transfer", *data, "--cues", str(cues[c]), "--wsss", str(wsss[w]), "--out", str(p),
                              "--force"], p, f"s{seed}-transfer-{c}-{w}")
        rj = sd / f"report_{c}_{w}.json"
        argv = [L, "report", *data, "--pseudo", str(p), "--out", str(rj)] + (["--wsss", str(wsss[w])] if c == "pam" else [])
        reports[(c, w)] = json.loads(run(argv, rj, f"s{seed}-report-{c}-{w}").read_text())
    return {"pseudo": pseudo, "wsss": wsss, "reports": reports, "cues": cues}


def fit_eval(run: Runner, root: Path, pseudo: Path, wsss: Path, out: Path, seed: int, iters: int, flags: list[str],
             name: str) -> float:
    """``fit`` (no validation) + ``evaluate`` of ``last.pt`` on val; returns mAP50."""
    T = _bin("bestie-train")
    data = ["--data", str(root)]
    run([T, "fit", *data, "--split", "train", "--pseudo", str(pseudo), "--wsss", str(wsss), "--out", str(out),
         "--backbone", "tiny", "--device", "cpu", "--seed", str(seed), "--iters", str(iters), "--val-split", "none",
         "--resume", "--force", *flags], out / "last.pt", name + "-fit")
    m = out / "metrics.json"
    run([T, "evaluate", "--checkpoint", str(out / "last.pt"), *data, "--split", "val", "--device", "cpu", "--out",
         str(m)], m, name + "-evaluate")
    return float(json.loads(m.read_text())["voc"]["mAP50"])


def one_seed(args, run: Runner, root: Path, shared: Path, seed: int, parts: set) -> dict:
    """Every number of one seed: ``{row: value}`` per table."""
    sd = Path(args.out) / f"seed{seed}"
    sd.mkdir(parents=True, exist_ok=True)
    data = ["--data", str(root), "--split", "train"]
    lab = label_stages(run, data, sd, seed, shared, parts, args)
    rep = lab["reports"]
    res: dict = {}
    if "fig6" in parts:
        res["fig6"] = {f"{c.upper()} cues: TP": rep[(c, "irn")]["total"]["tp"] for c in ("cam", "pam")}
    fits = {}
    todo = []
    # As the pipeline: the transfer runs again on every training crop from the PAM cues.
    per_crop = ["--cues", str(lab["cues"]["pam"])]
    if "table4" in parts or "table3" in parts:
        todo.append(("irn", lab["pseudo"][("pam", "irn")], lab["wsss"]["irn"], per_crop))
    if "table4" in parts:
        todo += [(w, lab["pseudo"][("pam", w)], lab["wsss"][w], per_crop) for w in ("cam", "gt")]
    if "table3" in parts:
        todo += [("no_ref", lab["pseudo"][("pam", "irn")], lab["wsss"]["irn"], per_crop + ["--no-refine"]),
                 ("no_iag", lab["pseudo"][("pam", "irn")], lab["wsss"]["irn"], per_crop + ["--no-iag", "--no-refine"]),
                 ("gt_labels", shared / "pseudo_gt.h5", shared / "wsss_gt.h5", [])]
    for name, p, w, flags in todo:
        fits[name] = fit_eval(run, root, p, w, sd / f"fit_{name}", seed, args.iters, flags, f"s{seed}-{name}")
    if "table4" in parts:
        res["table4"] = {}
        for w in ("irn", "cam", "gt"):
            r = rep[("pam", w)]
            res["table4"][f"{w}: mIoU"] = r["wsss"]["mIoU"]
            res["table4"][f"{w}: TP"] = r["total"]["tp"]
            res["table4"][f"{w}: precision %"] = r["total"]["precision"]  # report.json holds percent
            res["table4"][f"{w}: mAP50"] = fits[w]
    if "table3" in parts:
        res["table3"] = {"full": fits["irn"], "w/o refine": fits["no_ref"], "w/o IAG, w/o refine": fits["no_iag"],
                         "GT labels": fits["gt_labels"]}
    return res


def aggregate(per_seed: dict) -> dict:
    """``{table: {row: {"values", "mean", "std"}}}`` over the seeds (std: sample, ddof=1)."""
    out: dict = {}
    for res in per_seed.values():
        for table, rows in res.items():
            for row, v in rows.items():
                out.setdefault(table, {}).setdefault(row, {"values": []})["values"].append(v)
    for rows in out.values():
        for r in rows.values():
            a = np.asarray(r["values"], float)
            r["mean"] = float(a.mean())
            r["std"] = float(a.std(ddof=1)) if a.size > 1 else 0.0
    return out


def comparisons(agg: dict) -> list[dict]:
    """Pairs of rows measuring the same thing, and whether their gap exceeds the seed spread."""
    pairs = [("fig6", "PAM cues: TP", "CAM cues: TP")]
    for metric in ("mIoU", "TP", "precision %", "mAP50"):
        pairs += [("table4", f"irn: {metric}", f"cam: {metric}"), ("table4", f"gt: {metric}", f"irn: {metric}")]
    pairs += [("table3", "full", "w/o refine"), ("table3", "w/o refine", "w/o IAG, w/o refine"),
              ("table3", "full", "w/o IAG, w/o refine"), ("table3", "GT labels", "full")]
    out = []
    for table, a, b in pairs:
        if table in agg and a in agg[table] and b in agg[table]:
            ra, rb = agg[table][a], agg[table][b]
            gap = ra["mean"] - rb["mean"]
            # Paired too: both rows of a seed share its classifier, whose quality is most of the
            # spread between seeds; the per-seed differences say whether the gap is consistent.
            d = np.asarray(ra["values"], float) - np.asarray(rb["values"], float)
            out.append({"table": table, "a": a, "b": b, "gap": round(gap, 2),
                        "spread": round(ra["std"] + rb["std"], 2), "exceeds": abs(gap) > ra["std"] + rb["std"],
                        "per_seed": [round(float(x), 2) for x in d],
                        "same_sign": bool((d > 0).all() or (d < 0).all())})
    return out


def format_tables(agg: dict, comps: list[dict], seeds: list[int]) -> str:
    lines = [f"seeds {seeds}: mean +- std (values per seed)"]
    for table, rows in agg.items():
        lines.append(f"\n{table}")
        for row, r in rows.items():
            vals = ", ".join(f"{v:.1f}" for v in r["values"])
            lines.append(f"  {row:<24} {r['mean']:8.1f} +- {r['std']:5.1f}   ({vals})")
    lines.append("\ngaps (a - b) against the seed spread (std_a + std_b)")
    for c in comps:
        verdict = "larger than the spread" if c["exceeds"] else "within the spread"
        paired = ", ".join(f"{x:+.1f}" for x in c["per_seed"])
        sign = "same sign in every seed" if c["same_sign"] else "sign changes"
        lines.append(f"  {c['table']}: {c['a']} - {c['b']} = {c['gap']:+.1f} (spread {c['spread']:.1f}): {verdict}; "
                     f"per seed {paired} ({sign})")
    return "\n".join(lines)


def thread_env(threads: int | None) -> dict:
    """The environment of the benchmark's commands: ``threads`` BLAS / OpenMP threads each
    when given (several commands in parallel on few cores), else the caller's."""
    env = dict(os.environ)
    if threads:
        for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[k] = str(threads)
    return env


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", required=True, help="pipeline work folder with demo/ (made when missing)")
    p.add_argument("--out", required=True, help="output folder (every store, run and ablation.json)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds (at least 3 for a spread)")
    p.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of " + ",".join(PARTS))
    p.add_argument("--iters", type=int, default=600, help="fit iterations of every training run")
    p.add_argument("--pam-epochs", type=int, default=0, help="train-pam epochs (0 = its default)")
    p.add_argument("--irn-epochs", type=int, default=0, help="train-irn epochs (0 = its default)")
    p.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads per command (0 = leave as is)")
    p.add_argument("--jobs", type=int, default=1, help="seeds run at the same time")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    parts = {s.strip() for s in args.parts.split(",") if s.strip()}
    if parts - set(PARTS):
        raise SystemExit(f"unknown part(s) {sorted(parts - set(PARTS))}; choose from {','.join(PARTS)}")
    work, out = Path(args.work).resolve(), Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = thread_env(args.threads)
    t0 = time.perf_counter()
    if not (work / "demo").is_dir():
        run_stage(PipelineConfig(work=str(work)), "demo-data")
    root = work / "demo"
    run = Runner(env, out)
    L = _bin("bestie-labels")
    data = ["--data", str(root), "--split", "train"]
    run([L, "wsss", *data, "--from-gt", "--out", str(out / "wsss_gt.h5"), "--force"], out / "wsss_gt.h5", "wsss-gt")
    run([L, "transfer", *data, "--from-gt", "--out", str(out / "pseudo_gt.h5"), "--force"], out / "pseudo_gt.h5",
        "pseudo-gt")
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futs = {s: pool.submit(one_seed, args, run, root, out, s, parts) for s in seeds}
        per_seed = {s: f.result() for s, f in futs.items()}
    agg = aggregate(per_seed)
    comps = comparisons(agg)
    text = format_tables(agg, comps, seeds)
    print(text)
    result = {"work": str(work), "seeds": seeds, "parts": sorted(parts), "iters": args.iters,
              "per_seed": {str(s): r for s, r in per_seed.items()}, "aggregate": agg, "comparisons": comps,
              "command_seconds": run.seconds, "total_s": round(time.perf_counter() - t0, 1)}
    (out / "ablation.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {out / 'ablation.json'} (total {result['total_s']:.0f} s)")


if __name__ == "__main__":
    main()
