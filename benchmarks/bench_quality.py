"""Image-level quality beyond the demo: the pipeline's defaults on generated dataset families.

Every family of :data:`bestie_labels.pipeline.quality_data.FAMILIES` (colour-, shape-, texture-only
classes, touching instances, many small objects, cluttered backgrounds, VOC-like images) is
written as a VOC tree (``--images`` images, the first 75% ``train``, the rest ``val``; one fixed
tree per family) and, for every seed, goes through the CPU recipe of ``make voc-pipeline`` with
``bench_ablation``'s commands: ``train-pam``, PAM cues (``--min-conf 0.3``), ``train-irn``, IRN
class masks, ``transfer``, ``report`` (with ``--cues`` / ``--wsss``: cue quality, WSSS mIoU,
pseudo labels, the fate of every GT instance), ``fit`` on the pseudo labels (per-crop transfer)
and, as the reference measured in the same run, the same network on the GT instances; both
``last.pt`` are scored on ``val`` (mAP50). CAM cues (``cues --method cam``) through the same
class masks give paper Figure 6's comparison (PAM cues should give more true positives).

Per family: mean +- std over the seeds of cue precision / recall (a cue counts once, inside a GT
instance of its class), WSSS mIoU, pseudo precision / recall / TP, weak mAP50, full mAP50 and
weak / full, the fates, and PAM vs CAM TP; then the mean over the families and the worst family
of each figure. Writes ``<out>/quality.json`` and ``<out>/quality.png`` and prints the table.
Every command's output is cached with its command line and reused (``bench_ablation.Runner``),
so an interrupted run resumes.

``--variants`` also runs label-stage variants on each seed's classifier and IRN (no training):
the IRN class masks without the watershed cut and the peak split (IRN has neither), PAM cues
at ``--min-conf`` 0.5 and 0.7 (the official value) instead of the CPU recipe's 0.3, and the
transfer keeping cueless components and / or splitting components with several cues; per family
the WSSS mIoU and pseudo TP / precision / recall against the default, with the paired gap and
whether it exceeds the seed spread. ``--weak-variants`` also fits the network on the pseudo
labels of the variants named (weak mAP50 and weak / full against the default's, paired).

``--quick`` (one background hour on 2 cores): 160 images per family, one seed, fit 300
iterations, the VOC-like family at half size (250x188); the full suite (default) is 400 images,
seeds 0,1,2, fit 600 iterations, full size.

    .venv/bin/python benchmarks/bench_quality.py --out work/quality [--quick] [--variants [all|V,...]]
        [--weak-variants V,...] [--families colour,shape]
        [--seeds 0,1,2] [--images 400] [--iters 600] [--threads 1] [--jobs 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ablation import Runner, _bin, fit_eval, thread_env  # noqa: E402
from quality_tables import (format_table, format_variants, format_weak_variants, plot, summarise,  # noqa: E402
                            summarise_variants, summarise_weak_variants)

from bestie_labels.algorithms.transfer_options import TransferOptions  # noqa: E402
from bestie_labels.pipeline.plan import CUE_MIN_CONF  # noqa: E402
from bestie_labels.pipeline.demo_data import make_demo_dataset  # noqa: E402
from bestie_labels.pipeline.quality_data import FAMILIES, make_family_dataset  # noqa: E402

#: ``--families demo``: the demo data itself (not one of the suite's families), to check that
#: a default chosen on the suite does not lower the demo (run with ``--images 240 --iters 600``,
#: the pipeline's sizes).
DEMO = "demo"

_DATA_LOCK = threading.RLock()


def family_data(out: Path, family: str, n_images: int, scale: float) -> Path:
    """The family's VOC tree under ``out/data`` (made once; its name holds what it depends on).
    Locked: with ``--jobs`` the seeds of a family ask for it at the same time."""
    root = out / "data" / f"{family}_{n_images}_{scale:g}"
    with _DATA_LOCK:
        if not root.is_dir() and family == DEMO:
            make_demo_dataset(root, n_images=n_images)  # the pipeline's demo data (128 px)
        elif not root.is_dir():
            make_family_dataset(root, family, n_images=n_images, scale=scale)
    return root


def default_transfer_flags() -> list[str]:
    """The transfer's default modes where they are not the paper's (``drop``), spelled out, so a
    changed default changes the cached command line (and the cached pseudo labels are redone)."""
    d = TransferOptions()
    return [*(["--cueless", d.cueless] if d.cueless != "drop" else []),
            *(["--multi-cue", d.multi_cue] if d.multi_cue != "drop" else [])]


def label_stages(run: Runner, data: list[str], sd: Path, seed: int, name: str) -> dict:
    """Classifier, IRN, PAM and CAM cues, class masks, transfers and reports of one family and seed."""
    L = _bin("bestie-labels")
    pam, irn, wsss = sd / "pam.pt", sd / "irn.pt", sd / "wsss.h5"
    run([L, "train-pam", *data, "--out", str(pam), "--backbone", "tiny", "--seed", str(seed), "--force"], pam,
        f"{name}-train-pam")
    run([L, "train-irn", *data, "--checkpoint", str(pam), "--out", str(irn), "--seed", str(seed), "--force"], irn,
        f"{name}-train-irn")
    run([L, "wsss", *data, "--checkpoint", str(irn), "--out", str(wsss), "--force"], wsss, f"{name}-wsss")
    reports, cues = {}, {}
    for m in ("pam", "cam"):
        cues[m] = run([L, "cues", *data, "--method", m, "--checkpoint", str(pam), "--out", str(sd / f"cues_{m}.h5"),
                       "--min-conf", str(CUE_MIN_CONF["cpu"]), "--force"], sd / f"cues_{m}.h5", f"{name}-cues-{m}")
        p = sd / f"pseudo_{m}.h5"
        run([L, "transfer", *data, "--cues", str(cues[m]), "--wsss", str(wsss), *default_transfer_flags(), "--out",
             str(p), "--force"], p, f"{name}-transfer-{m}")
        rj = sd / f"report_{m}.json"
        run([L, "report", *data, "--pseudo", str(p), "--wsss", str(wsss), "--cues", str(cues[m]), "--out", str(rj)],
            rj, f"{name}-report-{m}")
        reports[m] = json.loads(rj.read_text())
    return {"reports": reports, "pseudo": sd / "pseudo_pam.h5", "wsss": wsss, "cues": cues["pam"]}


#: Label-stage variants (``--variants``): no training, the seed's classifier and IRN reused.
#: name -> ``wsss`` options, cues ``min_conf`` and ``cues`` options, ``transfer`` options (absent:
#: the default's).
VARIANTS = {"no cut / no peak split": {"wsss": ["--cut-threshold", "1", "--no-peak-split"]},
            "cues >= 0.5": {"min_conf": 0.5}, "cues >= 0.7 (official)": {"min_conf": 0.7},
            "CAMs 4 scales (IRN)": {"wsss": ["--cam-scales", "1,0.5,1.5,2"]},
            "PAM cues 4 scales": {"cues": ["--scales", "1,0.5,1.5,2"]},
            "peak kernel 7": {"cues": ["--peak-kernel", "7"]},
            "cueless keep": {"transfer": ["--cueless", "keep"]},
            "multi-cue split": {"transfer": ["--multi-cue", "split"]},
            "keep + split": {"transfer": ["--cueless", "keep", "--multi-cue", "split"]}}


def _tag(variant: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in variant)


def _figures(rep: dict) -> dict:
    return {"WSSS mIoU": rep["wsss"]["mIoU"], "pseudo TP": rep["total"]["tp"],
            "pseudo precision %": rep["total"]["precision"] or 0.0, "pseudo recall %": rep["total"]["recall"] or 0.0}


def variant_stores(run: Runner, data: list[str], sd: Path, name: str, v: str) -> tuple[Path, Path, Path]:
    """The class masks, cues and pseudo labels of variant ``v`` (one family and seed) and its report."""
    L = _bin("bestie-labels")
    spec, tag = VARIANTS[v], _tag(v)
    wsss, cues = sd / "wsss.h5", sd / "cues_pam.h5"
    if "wsss" in spec:
        wsss = run([L, "wsss", *data, "--checkpoint", str(sd / "irn.pt"), *spec["wsss"], "--out",
                    str(sd / f"wsss_{tag}.h5"), "--force"], sd / f"wsss_{tag}.h5", f"{name}-wsss-{tag}")
    if "min_conf" in spec or "cues" in spec:
        conf = spec.get("min_conf", CUE_MIN_CONF["cpu"])
        cues = run([L, "cues", *data, "--method", "pam", "--checkpoint", str(sd / "pam.pt"), "--out",
                    str(sd / f"cues_{tag}.h5"), "--min-conf", str(conf), *spec.get("cues", []), "--force"],
                   sd / f"cues_{tag}.h5", f"{name}-cues-{tag}")
    p, rj = sd / f"pseudo_{tag}.h5", sd / f"report_{tag}.json"
    run([L, "transfer", *data, "--cues", str(cues), "--wsss", str(wsss), *spec.get("transfer", []), "--out", str(p),
         "--force"], p, f"{name}-transfer-{tag}")
    run([L, "report", *data, "--pseudo", str(p), "--wsss", str(wsss), "--cues", str(cues), "--out", str(rj)], rj,
        f"{name}-report-{tag}")
    return wsss, cues, p


def label_variants(run: Runner, data: list[str], sd: Path, name: str, variants: list[str]) -> dict:
    """``variants`` of one family and seed: ``{variant: {metric: value, "lost": fates}}``."""
    rep0 = json.loads((sd / "report_pam.json").read_text())
    res = {"default": {**_figures(rep0), "lost": rep0["lost"]["total"]}}
    for v in variants:
        variant_stores(run, data, sd, name, v)
        rep = json.loads((sd / f"report_{_tag(v)}.json").read_text())
        res[v] = {**_figures(rep), "lost": rep["lost"]["total"]}
    return res


def weak_variants(run: Runner, root: Path, data: list[str], sd: Path, seed: int, iters: int, name: str,
                  variants: list[str]) -> dict:
    """``fit`` on the pseudo labels of each of ``variants`` (the per-crop transfer with the same
    options): ``{variant: weak mAP50}``."""
    out = {}
    for v in variants:
        wsss, cues, p = variant_stores(run, data, sd, name, v)
        out[v] = fit_eval(run, root, p, wsss, sd / f"fit_weak_{_tag(v)}", seed, iters, ["--cues", str(cues)],
                          f"{name}-weak-{_tag(v)}")
    return out


def one_run(args, run: Runner, out: Path, family: str, seed: int) -> dict:
    """Every figure of one family and seed: ``{metric: value}`` plus ``lost`` (the fates)."""
    root = family_data(out, family, args.images, args.scale_voclike if family == "voclike" else 1.0)
    fd = out / family
    sd = fd / f"seed{seed}"
    sd.mkdir(parents=True, exist_ok=True)
    data = ["--data", str(root), "--split", "train"]
    L = _bin("bestie-labels")
    # The GT reference: class masks and instances from the GT, shared by the seeds of a family.
    wgt, pgt = fd / "wsss_gt.h5", fd / "pseudo_gt.h5"
    with _DATA_LOCK:  # shared by the seeds of the family, which may run at the same time
        run([L, "wsss", *data, "--from-gt", "--out", str(wgt), "--force"], wgt, f"{family}-wsss-gt")
        run([L, "transfer", *data, "--from-gt", "--out", str(pgt), "--force"], pgt, f"{family}-pseudo-gt")
    name = f"{family}-s{seed}"
    lab = label_stages(run, data, sd, seed, name)
    rep = lab["reports"]["pam"]
    variants = label_variants(run, data, sd, name, args.variants) if args.variants else None
    weak = fit_eval(run, root, lab["pseudo"], lab["wsss"], sd / "fit_weak", seed, args.iters,
                    ["--cues", str(lab["cues"])], f"{name}-weak")
    full = fit_eval(run, root, pgt, wgt, sd / "fit_gt", seed, args.iters, [], f"{name}-gt")
    res = {"cue precision %": rep["cues"]["precision"], "cue recall %": rep["cues"]["recall"],
           "WSSS mIoU": rep["wsss"]["mIoU"], "pseudo precision %": rep["total"]["precision"],
           "pseudo recall %": rep["total"]["recall"], "pseudo TP": rep["total"]["tp"], "weak mAP50": weak,
           "full mAP50": full, "weak / full": weak / full if full else None,
           "PAM cues TP": rep["total"]["tp"], "CAM cues TP": lab["reports"]["cam"]["total"]["tp"]}
    if args.weak_variants:
        wv = weak_variants(run, root, data, sd, seed, args.iters, name, args.weak_variants)
        res.update({f"weak / full [{v}]": (m / full if full else None) for v, m in wv.items()})
        res.update({f"weak mAP50 [{v}]": m for v, m in wv.items()})
    return {"metrics": {k: (0.0 if v is None else float(v)) for k, v in res.items()}, "lost": rep["lost"]["total"],
            **({"variants": variants} if variants else {})}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="work/quality", help="output folder (data, stores, runs, quality.json/png)")
    p.add_argument("--quick", action="store_true", help="160 images, seed 0, 300 iterations, VOC-like at half size")
    p.add_argument("--families", default=",".join(FAMILIES),
                   help="comma-separated subset of " + ",".join(FAMILIES) + f", or {DEMO} (the demo data)")
    p.add_argument("--seeds", default=None, help="comma-separated training seeds (default 0,1,2; --quick 0)")
    p.add_argument("--images", type=int, default=None, help="images per family (default 400; --quick 160)")
    p.add_argument("--iters", type=int, default=None, help="fit iterations (default 600; --quick 300)")
    p.add_argument("--variants", nargs="?", const="all", default=None,
                   help="also label-stage variants (no training): 'all' or a comma-separated subset of: "
                        + "; ".join(VARIANTS))
    p.add_argument("--weak-variants", default=None,
                   help="comma-separated variants whose pseudo labels are also trained on (weak mAP50 and "
                        "weak / full per variant)")
    p.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads per command (0 = leave as is)")
    p.add_argument("--jobs", type=int, default=1, help="runs (family x seed) at the same time")
    args = p.parse_args(argv)
    q = args.quick
    args.seeds = [int(s) for s in (args.seeds or ("0" if q else "0,1,2")).split(",") if s.strip()]
    args.images = args.images or (160 if q else 400)
    args.iters = args.iters or (300 if q else 600)
    args.scale_voclike = 0.5 if q else 1.0
    args.families = [f.strip() for f in args.families.split(",") if f.strip()]
    for key in ("variants", "weak_variants"):
        names = getattr(args, key)
        names = list(VARIANTS) if names == "all" else [v.strip() for v in (names or "").split(",") if v.strip()]
        unknown = [v for v in names if v not in VARIANTS]
        if unknown:
            raise SystemExit(f"unknown variant(s) {unknown}; choose from {'; '.join(VARIANTS)}")
        setattr(args, key, names)
    bad = [f for f in args.families if f not in FAMILIES and f != DEMO]
    if bad:
        raise SystemExit(f"unknown famil{'y' if len(bad) == 1 else 'ies'} {bad}; choose from {','.join(FAMILIES)}")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = thread_env(args.threads)
    t0 = time.perf_counter()
    (out / "logs").mkdir(exist_ok=True)
    run = Runner(env, out / "logs")
    todo = [(f, s) for f in args.families for s in args.seeds]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futs = {(f, s): pool.submit(one_run, args, run, out, f, s) for f, s in todo}
        per_run: dict = {}
        for (f, s), fut in futs.items():
            per_run.setdefault(f, {})[s] = fut.result()
    summ = summarise(per_run, args.families)
    text = format_table(summ, args.families)
    if args.variants:
        summ["variants"] = summarise_variants(per_run, args.families)
        text += format_variants(summ["variants"])
    if args.weak_variants:
        summ["weak_variants"] = summarise_weak_variants(per_run, args.families, args.weak_variants)
        text += format_weak_variants(summ["weak_variants"])
    print(text)
    plot(summ, args.families, out / "quality.png")
    result = {"quick": args.quick, "seeds": args.seeds, "images": args.images, "iters": args.iters,
              "voclike_scale": args.scale_voclike, "per_run": {f: {str(s): r for s, r in v.items()}
                                                               for f, v in per_run.items()},
              **summ, "command_seconds": run.seconds, "total_s": round(time.perf_counter() - t0, 1)}
    (out / "quality.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {out / 'quality.json'} and {out / 'quality.png'} (total {result['total_s']:.0f} s)")


if __name__ == "__main__":
    main()
