"""The whole method as a list of cached stages: one definition for Make and for Python.

Each :class:`Stage` names the command that runs it (a ``bestie-labels`` / ``bestie-train``
command line), the files it reads and the file it writes. :func:`emit_makefile` turns the list
into Make rules (``make voc-pipeline`` includes them), and :func:`run_pipeline` runs the same
list from Python (``bestie-labels pipeline``), so the options live in one place.

A stage is current when its output exists and its done marker ``<work>/.stamps/<stage>.done``
(touched when its command succeeds) is newer than its input files, the done markers of the
stages it reads from, and ``<work>/.stamps/<stage>.cmd``, the command line it ran (rewritten
only when the command changes, so that changing one option reruns that stage and everything
after it, and nothing else).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import BestieError
from ..core.option_fields import option
from ..core.fileio import read_json, write_json, write_text
from .data_args import data_args


@dataclass
class PipelineConfig:
    """The Make variables of ``make voc-pipeline`` (empty string = not given).

    Each field's ``metadata`` holds its ``bestie-labels pipeline`` help (:mod:`bestie_cli.options`).

    Attributes:
        data: the dataset: a VOC root, a COCO instances JSON (with ``images``) or a folder with
            ``labels.csv``; empty (and no ``voc_root``) = generate the demo data under ``work/demo``.
        voc_root: a VOC2012 tree (the older name of ``data`` for VOC; give one of the two).
        data_format, images: force the dataset kind; the COCO image folder.
        val_data, val_images: the dataset to evaluate on when ``data`` has no ``val`` split (a
            COCO val JSON and its image folder); a VOC root evaluates on its own ``val``.
        labels: image-level label file in the BESTIE format (``train_cls.txt`` for train_aug).
        work: output folder.
        sup: ``"cls"`` (image-level labels, PAM cues) or ``"point"`` (point labels as cues).
        points_dir: point files (``x y cls conf``); demo default ``work/demo/points``.
        wsss_dir: WSSS PNGs to import instead of the built-in IRN (``train-irn`` + ``wsss``).
        cls_backbone: classifier backbone (train-pam); empty = the recipe's (:func:`recipe`).
        backbone: segmentation backbone (fit); empty = the recipe's.
        device: ``cpu`` or ``cuda``; it picks the recipe: ``cuda`` the paper's settings
            (VGG-16 PAM, HRNet-W48, the commands' paper budgets), ``cpu`` the CPU recipe (tiny
            networks and CPU budgets) on any dataset, the demo or VOC.
        pretrained_cls, pretrained_seg: local ImageNet weights for the classifier / backbone.
        demo_images, demo_size: size of the generated demo dataset.
        pam_epochs, fit_iters, batch_size, irn_epochs: training budgets (empty: the commands'
            defaults for the backbone); ``batch_size`` is fit's.
    """

    data: str = option("", "Dataset: VOC root, COCO instances JSON (with --images) or folder with labels.csv; "
                           "empty: generate and use the demo data.")
    voc_root: str = option("", "VOC2012 tree (the same as --data for VOC).")
    data_format: str = option("", "Force the dataset kind (voc, coco, folder) instead of detecting it.")
    images: str = option("", "COCO: the training image folder.")
    val_data: str = option("", "Dataset to evaluate on (COCO: the val instances JSON); default: split val of --data.")
    val_images: str = option("", "COCO: the image folder of --val-data.")
    labels: str = option("", "Image-level label file (BESTIE format, e.g. train_cls.txt).")
    work: str = option("work", "Output folder.", show_default=True)
    sup: str = option("cls", choices=("cls", "point"), show_default=True)
    points_dir: str = option("", "Point files for --sup point (default: <root>/points).")
    wsss_dir: str = option("", "Import these WSSS PNGs instead of the built-in IRN (train-irn + wsss).")
    cls_backbone: str = option("", "Classifier backbone (default: the recipe's: cuda vgg16, cpu tiny).")
    backbone: str = option("", "Segmentation backbone (default: the recipe's: cuda hrnet_w48, cpu tiny).")
    device: str = option("cpu", "Also picks the recipe: cuda = the paper's settings, cpu = tiny networks and CPU "
                                "budgets.", choices=("cpu", "cuda"), show_default=True)
    pretrained_cls: str = option("", "Local ImageNet weights for the classifier.")
    pretrained_seg: str = option("", "Local ImageNet weights for the segmentation backbone.")
    demo_images: int = option(240, show_default=True)
    demo_size: int = option(128, show_default=True)
    # empty budgets: the commands' defaults for the backbone (irn: for the classifier's backbone)
    pam_epochs: str = option("", "train-pam epochs (default: the command's default for the backbone).")
    fit_iters: str = option("", "fit iterations (default: the command's default for the backbone).")
    batch_size: str = option("", "fit batch size (default: the command's default for the backbone).")
    irn_epochs: str = option("", "train-irn epochs (default: the command's default for the backbone).")
    seed: int = option(0, show_default=True)
    workers: int = option(2, show_default=True)

    @property
    def is_demo(self) -> bool:
        return not (self.data or self.voc_root)

    @property
    def dataset(self) -> str:
        """The training dataset's path (``data`` or ``voc_root``); BestieError when both differ."""
        if self.data and self.voc_root and self.data != self.voc_root:
            raise BestieError(f"give the dataset once: --data {self.data} or --voc-root {self.voc_root}")
        return self.data or self.voc_root


#: The two recipes ``make voc-pipeline`` knows, picked by DEVICE; any Make variable overrides.
RECIPES = {
    "cuda": dict(name="paper settings", cls_backbone="vgg16", backbone="hrnet_w48",
                 budgets="paper budgets (train-pam 15 epochs of batch 5; fit crop 416, batch 16, "
                         "50,000 iterations, Adam 5e-5, official augmentation)"),
    "cpu": dict(name="CPU recipe", cls_backbone="tiny", backbone="tiny",
                budgets="CPU budgets (tiny: train-pam 16 epochs of batch 8; fit crop 128, batch 8, "
                        "600 iterations; PAM cues >= 0.3)"),
}

#: ``cues --min-conf`` of each recipe: the official 0.7 with the paper's classifier; 0.3 with the
#: tiny one, whose PAM peaks of a second instance of a class are often below 0.7 of the first
#: (demo, train split: 400 true-positive pseudo instances at 88.9% against 368 at 84.6%).
CUE_MIN_CONF = {"cuda": None, "cpu": 0.3}


def recipe(cfg: PipelineConfig) -> dict:
    """The resolved training choices of ``cfg``: its recipe's defaults under the given values.

    Returns ``{"name", "cls_backbone", "backbone", "pam_epochs", "fit_iters", "batch_size"}``
    (empty budgets mean the commands' defaults for the backbone).
    """
    base = RECIPES.get(cfg.device)
    if base is None:
        raise BestieError(f"DEVICE must be cpu or cuda, got {cfg.device!r}")
    return {"name": base["name"], "cls_backbone": cfg.cls_backbone or base["cls_backbone"],
            "backbone": cfg.backbone or base["backbone"], "pam_epochs": cfg.pam_epochs,
            "fit_iters": cfg.fit_iters, "batch_size": cfg.batch_size}


def describe(cfg: PipelineConfig) -> str:
    """One line saying which configuration runs (the first line of every pipeline run)."""
    r = recipe(cfg)
    data = "the demo data" if cfg.is_demo else cfg.dataset + (f" with {cfg.labels}" if cfg.labels else "")
    data += f", evaluated on {cfg.val_data}" if cfg.val_data else ""
    budgets = ", ".join(f"{k}={r[k]}" for k in ("pam_epochs", "fit_iters", "batch_size") if r[k])
    budgets = f"{budgets} (else the commands' defaults)" if budgets else RECIPES[cfg.device]["budgets"]
    return (f"configuration: {r['name']} on {cfg.device} ({'image-level labels' if cfg.sup == 'cls' else 'point labels'}): "
            f"classifier {r['cls_backbone']}, network {r['backbone']}, {budgets}; data: {data}")


@dataclass
class Stage:
    name: str
    argv: list[str]
    inputs: list[str]
    output: str

    def command(self) -> str:
        return shlex.join(self.argv)


def _bin(name: str) -> str:
    # The console scripts next to the running interpreter (the project's venv).
    cand = Path(sys.executable).with_name(name)
    return str(cand) if cand.exists() else name


@dataclass
class _Ctx:
    """What every stage builder shares: paths, data options and the resolved recipe."""

    work: Path
    root: str
    data: list[str]        # --data ROOT [--data-format F] [--images DIR]
    train_data: list[str]  # data + --split train [--labels FILE]
    val_data: list[str] | None  # evaluate's dataset (--split val); None: no GT to evaluate on
    data_inputs: list[str]
    dev: list[str]
    recipe: dict
    L: str = field(default_factory=lambda: _bin("bestie-labels"))
    T: str = field(default_factory=lambda: _bin("bestie-train"))


def build_stages(cfg: PipelineConfig) -> list[Stage]:
    """The stages, in order, for ``cfg`` (see the README's quick-start for what each does)."""
    if cfg.sup not in ("cls", "point"):
        raise BestieError(f"SUP must be cls or point, got {cfg.sup!r}")
    work = Path(cfg.work)
    stages: list[Stage] = []
    if cfg.is_demo:
        root = str(work / "demo")
        split_file = str(work / "demo" / "ImageSets" / "Segmentation" / "train.txt")
        stages.append(Stage("demo-data", [_bin("bestie-labels"), "demo-data", root, "--images",
                                          str(cfg.demo_images), "--size", str(cfg.demo_size),
                                          "--seed", str(cfg.seed)], [], split_file))
        d = data_args(root, labels=cfg.labels, generated=True)
    else:
        d = data_args(cfg.dataset, data_format=cfg.data_format, images=cfg.images, labels=cfg.labels,
                      val_data=cfg.val_data, val_images=cfg.val_images)
    ctx = _Ctx(work, d.root, d.data, d.train, d.val, d.inputs, ["--device", cfg.device], recipe(cfg))
    stages += _label_stages(cfg, ctx)
    stages += _train_stages(cfg, ctx)
    return stages


def _label_stages(cfg: PipelineConfig, c: _Ctx) -> list[Stage]:
    """train-pam (when a classifier is needed), cues, wsss, transfer, report, export."""
    stages, L, work = [], c.L, c.work
    pam = str(work / "pam.pt")
    # --resume --force: continue an interrupted run, start over if the options or data changed.
    argv = [L, "train-pam", *c.train_data, "--out", pam, "--backbone", c.recipe["cls_backbone"], *c.dev,
            "--seed", str(cfg.seed), "--resume", "--force"]
    argv += ["--pretrained", cfg.pretrained_cls] if cfg.pretrained_cls else []
    argv += ["--epochs", str(cfg.pam_epochs)] if cfg.pam_epochs else []
    if cfg.sup == "cls" or not cfg.wsss_dir:
        stages.append(Stage("train-pam", argv, c.data_inputs + ([cfg.pretrained_cls] if cfg.pretrained_cls else []), pam))

    cues = str(work / "cues.h5")
    if cfg.sup == "cls":
        argv = [L, "cues", *c.train_data, "--method", "pam", "--checkpoint", pam, "--out", cues, *c.dev,
                "--workers", str(cfg.workers), "--replace-own"]
        if CUE_MIN_CONF[cfg.device] is not None:
            argv += ["--min-conf", str(CUE_MIN_CONF[cfg.device])]
        cue_inputs = c.data_inputs + [pam]
    else:
        points = cfg.points_dir or str(Path(c.root) / "points")
        argv = [L, "cues", *c.train_data, "--method", "points", "--points", points, "--out", cues, "--replace-own"]
        cue_inputs = list(c.data_inputs)
    stages.append(Stage("cues", argv, cue_inputs, cues))

    wsss = str(work / "wsss.h5")
    if cfg.wsss_dir:
        argv = [L, "wsss", *c.train_data, "--import", cfg.wsss_dir, "--clean", "--out", wsss, "--replace-own"]
        wsss_inputs = list(c.data_inputs)
    else:
        # The built-in WSSS: IRN's boundary network trained from the classifier's own CAMs; wsss
        # with only --checkpoint uses it (--method irn is the default).
        irn = str(work / "irn.pt")
        argv = [L, "train-irn", *c.train_data, "--checkpoint", pam, "--out", irn, *c.dev, "--seed", str(cfg.seed),
                "--resume", "--force"] + (["--epochs", str(cfg.irn_epochs)] if cfg.irn_epochs else [])
        stages.append(Stage("train-irn", argv, c.data_inputs + [pam], irn))
        argv = [L, "wsss", *c.train_data, "--checkpoint", irn, "--out", wsss, *c.dev, "--workers",
                str(cfg.workers), "--replace-own"]
        wsss_inputs = c.data_inputs + [irn]
    stages.append(Stage("wsss", argv, wsss_inputs, wsss))

    pseudo = str(work / "pseudo.h5")
    stages.append(Stage("transfer", [L, "transfer", *c.train_data, "--cues", cues, "--wsss", wsss, "--out", pseudo,
                                     "--workers", str(cfg.workers), "--replace-own"], [cues, wsss], pseudo))
    # No --force anywhere but on checkpoints (which --resume checks): the stores get --replace-own
    # and the JSON / figure outputs nothing, so the registry of own outputs decides what a stage
    # may replace, and a file a user put in the work folder is refused, never replaced.
    report = str(work / "report.json")
    # --wsss: report.json also holds the class masks' mIoU against the GT (paper Table 4's column).
    # --html: work/report/index.html, the static report of every image (its own manifest records
    # what it wrote; a rerun redraws only images whose stores changed).
    stages.append(Stage("report", [L, "report", *c.data, "--split", "train", "--pseudo", pseudo, "--wsss", wsss,
                                   "--out", report, "--overlays", str(work / "overlays"),
                                   "--html", str(work / "report"), "--workers", str(cfg.workers)]
                        + (["--labels", cfg.labels] if cfg.labels else []), [pseudo, wsss], report))
    coco = str(work / "pseudo_coco.json")
    stages.append(Stage("export", [L, "export", *c.train_data, "--pseudo", pseudo, "--format", "coco",
                                   "--out", coco], [pseudo], coco))
    return stages


def _train_stages(cfg: PipelineConfig, c: _Ctx) -> list[Stage]:
    """fit, evaluate (best.pt), evaluate-last (last.pt), summary."""
    work, T = c.work, c.T
    pseudo, wsss, cues = str(work / "pseudo.h5"), str(work / "wsss.h5"), str(work / "cues.h5")
    run = work / "run"
    last = str(run / "last.pt")
    # --cues: the semantic knowledge transfer runs again on every training crop (official).
    argv = [T, "fit", *c.train_data, "--pseudo", pseudo, "--wsss", wsss, "--cues", cues, "--out", str(run),
            "--backbone", c.recipe["backbone"], *c.dev, "--seed", str(cfg.seed), "--sup", cfg.sup,
            "--resume", "--force"]
    argv += ["--pretrained", cfg.pretrained_seg] if cfg.pretrained_seg else []
    # point labels outside a VOC root (COCO, folder): fit reads them from the given folder
    argv += ["--points", cfg.points_dir] if cfg.sup == "point" and cfg.points_dir else []
    argv += ["--iters", str(cfg.fit_iters)] if cfg.fit_iters else []
    argv += ["--batch-size", str(cfg.batch_size)] if cfg.batch_size else []
    argv += ["--val-split", "val"] if cfg.is_demo else []
    stages = [Stage("fit", argv, [pseudo, wsss, cues], last)]
    # best.pt is chosen on val and then scored on val (optimistic); last.pt involves no choice.
    # Both are evaluated, and the summary names which is which. No validation data with GT
    # instances (a folder dataset): no evaluate stages, and the summary has no mAP.
    metrics, metrics_last = str(work / "metrics.json"), str(work / "metrics_last.json")
    if c.val_data is not None:
        stages.append(Stage("evaluate", [T, "evaluate", "--checkpoint", str(run / "best.pt"), *c.val_data,
                                         "--out", metrics, "--vis", str(work / "predictions"),
                                         "--html", str(work / "evaluate"), "--workers", str(cfg.workers), *c.dev],
                            [last], metrics))
        stages.append(Stage("evaluate-last", [T, "evaluate", "--checkpoint", last, *c.val_data,
                                              "--out", metrics_last, *c.dev], [last], metrics_last))
    summary = str(work / "summary.json")
    inputs = [str(work / "report.json")] + ([metrics, metrics_last] if c.val_data is not None else [last])
    stages.append(Stage("summary", [c.L, "summary", "--work", str(work), "--quiet"], inputs, summary))
    return stages


def _stamp(cfg: PipelineConfig, stage: Stage) -> Path:
    return Path(cfg.work) / ".stamps" / f"{stage.name}.cmd"


def _done(cfg: PipelineConfig, stage: Stage) -> Path:
    # Written only when the stage's command succeeded: training stages write checkpoints as they
    # go, so their output existing does not mean they finished.
    return Path(cfg.work) / ".stamps" / f"{stage.name}.done"


def _deps(cfg: PipelineConfig, stages: list[Stage], stage: Stage) -> list[str]:
    """What a stage depends on: external input files, upstream stages' done markers, its stamp."""
    producer = {s.output: s for s in stages}
    deps = [str(_done(cfg, producer[i])) if i in producer else i for i in stage.inputs]
    return [*deps, str(_stamp(cfg, stage))]


def write_stamps(cfg: PipelineConfig, stages: list[Stage]) -> None:
    """Record each stage's command line, touching a stamp only when the command changed."""
    for s in stages:
        p = _stamp(cfg, s)
        if not p.is_file() or p.read_text() != s.command() + "\n":
            write_text(p, s.command() + "\n")


def is_current(cfg: PipelineConfig, stage: Stage, stages: list[Stage] | None = None) -> bool:
    """Make's rule: the stage finished after its inputs, upstream stages and command stamp changed."""
    done = _done(cfg, stage)
    if not done.exists() or not Path(stage.output).exists():
        return False
    stamp = _stamp(cfg, stage)
    if not stamp.is_file() or stamp.read_text() != stage.command() + "\n":
        return False  # the command changed and its stamp is not rewritten yet (``--dry-run``)
    t = done.stat().st_mtime
    for dep in _deps(cfg, stages or build_stages(cfg), stage):
        p = Path(dep)
        if p.exists() and p.stat().st_mtime > t:
            return False
    return True


def config_args(cfg: PipelineConfig) -> list[str]:
    """The ``bestie-labels pipeline`` options that reproduce ``cfg``."""
    args = []
    for name in ("data", "voc_root", "data_format", "images", "val_data", "val_images", "labels", "work",
                 "sup", "points_dir", "wsss_dir", "cls_backbone", "backbone",
                 "device", "pretrained_cls", "pretrained_seg", "demo_images", "demo_size", "pam_epochs",
                 "fit_iters", "batch_size", "irn_epochs", "seed", "workers"):
        v = getattr(cfg, name)
        if v != "":
            args += ["--" + name.replace("_", "-"), str(v)]
    return args


def emit_makefile(cfg: PipelineConfig, path: str | os.PathLike) -> None:
    """Write Make rules for the stages; target ``all`` builds the summary.

    Each rule's recipe calls ``bestie-labels pipeline ... --stage NAME``, which runs the stage's
    command from :func:`build_stages` and records its wall time: the command lines exist only here.
    """
    stages = build_stages(cfg)
    write_stamps(cfg, stages)
    me = shlex.join([_bin("bestie-labels"), "pipeline", *config_args(cfg)])
    lines = ["# Generated by `bestie-labels pipeline --emit-make`; edit bestie_labels/pipeline/plan.py instead.",
             "all: " + " ".join(str(_done(cfg, s)) for s in stages), ""]
    for s in stages:
        lines += [f"{_done(cfg, s)}: {' '.join(_deps(cfg, stages, s))}", f"\t@{me} --stage {s.name}", ""]
    write_text(path, "\n".join(lines))


def run_stage(cfg: PipelineConfig, name: str, log=print) -> float:
    """Run one stage's command, touch its output, record its wall time; return seconds."""
    stages = {s.name: s for s in build_stages(cfg)}
    if name not in stages:
        raise BestieError(f"no stage {name!r} in this pipeline (stages: {', '.join(stages)})")
    s = stages[name]
    log(f"== {s.name}: {s.command()}")
    t0 = time.perf_counter()
    r = subprocess.run(s.argv)
    if r.returncode != 0:
        raise BestieError(f"stage '{s.name}' failed (exit {r.returncode})", s.output)
    _done(cfg, s).parent.mkdir(parents=True, exist_ok=True)  # a stage run alone, in a fresh work folder
    _done(cfg, s).touch()
    dt = time.perf_counter() - t0
    timing = Path(cfg.work) / "stage_times.json"
    times = read_json(timing) if timing.is_file() else {}
    times[s.name] = round(dt, 1)
    write_json(timing, times, indent=1)
    return dt


def run_pipeline(cfg: PipelineConfig, log=print) -> dict:
    """Run every stage that is not current, in order; return ``{stage: seconds}`` (0 = skipped)."""
    stages = build_stages(cfg)
    write_stamps(cfg, stages)
    times = {}
    stale = False  # once a stage reruns, every later stage does (as Make would see it)
    for s in stages:
        stale = stale or not is_current(cfg, s, stages)
        times[s.name] = run_stage(cfg, s.name, log) if stale else 0.0
    return times
