"""Per-stage runners: open inputs, call the pure functions image by image, write stores.

Every per-image stage follows the same pattern:

1. a :class:`~bestie_labels.store.StoreWriter` with the options that determine the content and
   the fingerprints of its inputs (dataset split, upstream stores, point / mask folders,
   checkpoint); an output made with the same header is "up to date" and skipped, one made with
   another header is refused unless ``force``;
2. the images still pending (an interrupted run resumes) are processed, with ``workers``
   processes (joblib) when > 1; results are consumed in split order by the main process, which
   alone writes;
3. on Ctrl-C the finished images are flushed to ``<out>.parts/`` first, so a rerun resumes
   from them (a bad input, a :class:`BestieError`, removes the parts instead: fixing it changes
   the header they were made with, so nothing is left behind); ``finish()`` writes the store in
   split order, byte-identical however the run was split (``shard``), parallelised or
   interrupted.

Each runner returns a small summary dict (``stage``, ``out``, ``images``, ``written``,
``up_to_date``, ``warnings`` {name: count}); :func:`format_summary` prints it.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from tqdm import tqdm

from .constants import VOID
from .datasets.base import Dataset
from .errors import BestieError
from .fileio import read_index_png, sha256_file
from .h5io import pack_arrays
from .store import Store, StoreWriter, merge_stores
from .transfer import gt_to_pseudo, transfer_instances

#: Stage names recorded in the stores (``Store(path, stage=...)``).
CUES, WSSS, PSEUDO = "cues", "wsss", "pseudo"

#: ``--min-conf`` when not given: every point of a points file; for peaks from activation maps
#: 0.7, the threshold the official training code applies to ``Peak_points/`` (which it writes
#: with peaks >= 0.1: ``--min-conf 0.1`` reproduces those files).
DEFAULT_MIN_CONF = {"points": 0.0, "pam": 0.7, "cam": 0.7}
PEAK_KERNEL, PEAK_TOPK = 15, 25

_MAX_CHUNK = 16


# ----------------------------------------------------------------------------------------
# plumbing
# ----------------------------------------------------------------------------------------
_STORE_CACHE: dict[tuple, Store] = {}


def _cached_store(path: str, stage: str) -> Store:
    """A read handle kept open across images (also inside joblib workers)."""
    st = os.stat(path)
    key = (os.fspath(path), stage, st.st_ino, st.st_mtime_ns, st.st_size)
    s = _STORE_CACHE.get(key)
    if s is None:
        s = _STORE_CACHE[key] = Store(path, stage=stage)
    return s


def _close_cached() -> None:
    for s in _STORE_CACHE.values():
        s.close()
    _STORE_CACHE.clear()


def open_input(path: str | os.PathLike, stage: str, dataset: Dataset, option: str,
               same_data: bool = False) -> Store:
    """Open an upstream store, checking its stage and that it holds every image of ``dataset``.

    ``option`` (``"--cues"``, ...) names the command-line option in the messages. With
    ``same_data`` the store must have been made from this very split (same dataset fingerprint:
    images, image-level labels, image files), as transfer needs.
    """
    s = Store(path, stage=stage)
    try:
        if s.shard:
            raise BestieError(f"{option}: this is shard {s.shard} of a sharded run; join the parts "
                              "with `bestie-labels merge` first", path)
        missing = [i for i in dataset.image_ids if i not in s]
        if missing:
            raise BestieError(f"{option}: {len(missing)} of the {len(dataset)} images of split "
                              f"'{dataset.split}' are not in this store (first: {missing[0]})", path)
        if same_data and s.inputs.get("data") not in (None, dataset.fingerprint()):
            raise BestieError(f"{option}: made from another version of split '{dataset.split}' (other "
                              "images, image-level labels or image files, e.g. another --labels file); "
                              "rerun that stage with the same data options", path)
    except BaseException:
        s.close()
        raise
    return s


def _files_digest(paths: Sequence[Path]) -> str:
    """SHA-256 over the bytes of ``paths`` (a missing file counts as such)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(os.fspath(p.name).encode() + b"\0")
        h.update(sha256_file(p).encode() if p.is_file() else b"missing")
    return h.hexdigest()


def _packed(work: Callable, ctx: Mapping, ids: list[str]) -> list:
    """``work(ctx, ids)`` with its arrays compressed here, in the worker (see
    :func:`bestie_labels.store.pack_arrays`): the process writing the store only copies bytes."""
    return [(image_id, pack_arrays(arrays), warn) for image_id, arrays, warn in work(ctx, ids)]


def _execute(writer: StoreWriter, work: Callable, ctx: Mapping, workers: int, desc: str) -> tuple[int, Counter]:
    """Run ``work(ctx, ids) -> [(image_id, arrays, warnings), ...]`` over ``writer.pending``.

    ``workers == 1`` calls ``work`` in this process one image at a time; more uses joblib
    processes on chunks of images. Results are added in split order. Returns the number of
    images written and the warning counts.
    """
    pending = writer.pending
    warnings: Counter = Counter()
    if not pending:
        return 0, warnings
    if workers <= 1:
        results = (work(ctx, [i]) for i in pending)
    else:
        from joblib import Parallel, delayed

        size = max(1, min(_MAX_CHUNK, len(pending) // (4 * workers)))
        chunks = [pending[k:k + size] for k in range(0, len(pending), size)]
        results = Parallel(n_jobs=workers, return_as="generator")(delayed(_packed)(work, ctx, c) for c in chunks)
    written = 0
    bar = tqdm(total=len(pending), desc=desc, unit="img", disable=None)
    try:
        for chunk in results:
            for image_id, arrays, warn in chunk:
                writer.add(image_id, arrays, {k: int(v) for k, v in sorted(warn.items()) if v} or None)
                warnings.update({k: v for k, v in warn.items() if v})
                written += 1
                bar.update()
    except BestieError:
        # Bad input: fixing it changes the inputs or options the parts were made with, so they
        # could never be resumed; leave nothing behind.
        import shutil

        shutil.rmtree(writer.parts_dir, ignore_errors=True)
        raise
    except BaseException:
        # Ctrl-C (or a crash): keep what is finished; a rerun resumes after it.
        try:
            writer.flush()
        except Exception:
            pass
        _discard_if_empty(writer)
        raise
    finally:
        bar.close()
        close = getattr(results, "close", None)
        if close is not None:
            close()
        _close_cached()
    writer.finish()
    return written, warnings


def _discard_if_empty(writer: StoreWriter) -> None:
    """Remove ``<out>.parts/`` when it holds no finished image (nothing to resume from)."""
    import shutil

    if writer.n_done == 0 and writer.parts_dir.is_dir():
        shutil.rmtree(writer.parts_dir, ignore_errors=True)


def _load_model(writer: StoreWriter, checkpoint, device: str, num_classes: int):
    from .classifier.maps import load_classifier

    try:
        model, _ = load_classifier(checkpoint, device, num_classes=num_classes)
    except BaseException:
        _discard_if_empty(writer)
        raise
    return model


def stored_warnings(path: str | os.PathLike) -> dict[str, int]:
    """Warning counts of a finished store, summed over its images.

    Each image's warnings (``missing_points_file``, ``cues_not_in_label``, ``cleaned_classes``,
    ``no_foreground``, ``no_instance``, ``empty_label``) are stored as attributes of its group,
    so the counts cover the whole store however many runs it took to write.
    """
    import h5py

    total: Counter = Counter()
    with h5py.File(path, "r") as h5:
        for g in h5["images"].values():
            total.update({k: int(v) for k, v in g.attrs.items()})
    return dict(sorted(total.items()))


def _summary(stage: str, out: Path, writer: StoreWriter, written: int, warnings: Counter | None = None,
             **extra) -> dict:
    """``warnings`` is this run's; the summary reports those stored for every image of ``out``."""
    return {"stage": stage, "out": os.fspath(out), "images": len(writer.image_ids), "written": written,
            "up_to_date": False, "warnings": stored_warnings(out), **extra}


def _up_to_date(stage: str, out: Path, writer: StoreWriter, **extra) -> dict:
    return {"stage": stage, "out": os.fspath(out), "images": len(writer.image_ids), "written": 0,
            "up_to_date": True, "warnings": stored_warnings(out), **extra}


def format_summary(s: Mapping[str, Any]) -> str:
    """One or two lines for the CLI."""
    if s.get("up_to_date") and not s.get("written"):
        head = f"{s['stage']}: {s['out']} is up to date ({s['images']} images)"
    elif s["stage"] in (CUES, WSSS, "transfer"):
        head = f"{s['stage']}: wrote {s['out']} ({s['images']} images, {s['written']} computed now)"
    else:
        head = f"{s['stage']}: wrote {s['out']} ({s['images']} images)"
    extra = {k: v for k, v in s.items()
             if k not in ("stage", "out", "images", "written", "up_to_date", "warnings")}
    lines = [head]
    if extra:
        lines.append("  " + ", ".join(f"{k}: {v}" for k, v in extra.items()))
    if s.get("warnings"):
        lines.append("  warnings: " + ", ".join(f"{k} x{v}" for k, v in s["warnings"].items()))
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------
# cues
# ----------------------------------------------------------------------------------------
def _cues_from_points(ctx: Mapping, ids: list[str]) -> list:
    from .points import read_points

    ds: Dataset = ctx["dataset"]
    out = []
    for image_id in ids:
        rec = ds.record(image_id)
        path = Path(ctx["points_dir"]) / f"{image_id}.txt"
        warn: Counter = Counter()
        if not path.is_file():
            pts = np.zeros((0, 4), np.float32)
            warn["missing_points_file"] += 1
        else:
            pts = read_points(path, rec.height, rec.width, ds.num_classes, min_conf=ctx["min_conf"])
        pts, dropped = _drop_foreign(pts, rec.labels)
        warn["cues_not_in_label"] += dropped
        if not rec.labels.any():
            warn["empty_label"] += 1
        out.append((image_id, {"points": pts}, warn))
    return out


def _drop_foreign(pts: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Drop points whose class is not in the image-level label; returns (kept, n dropped)."""
    keep = np.asarray(labels, bool)[pts[:, 2].astype(np.int64)] if len(pts) else np.zeros(0, bool)
    return pts[keep], int((~keep).sum())


def _cues_from_maps(ctx: Mapping, ids: list[str]) -> list:
    from .classifier.maps import activation_maps
    from .classifier.peaks import extract_peaks

    ds: Dataset = ctx["dataset"]
    out = []
    for image_id in ids:
        rec = ds.record(image_id)
        image = ds.load_image(rec)
        if image.shape[:2] != (rec.height, rec.width):
            raise BestieError(f"image is {image.shape[1]}x{image.shape[0]} but its record says "
                              f"{rec.width}x{rec.height}", rec.file_name)
        maps = activation_maps(ctx["model"], image, rec.labels, ctx["device"], pam=ctx["pam"])
        pts = np.asarray(extract_peaks(maps, rec.labels, kernel=ctx["kernel"], topk=ctx["topk"],
                                       min_conf=ctx["min_conf"]), np.float32).reshape(-1, 4)
        arrays = {"points": pts}
        if ctx["save_maps"]:
            cls = np.flatnonzero(rec.labels)
            arrays["maps"] = np.asarray(maps)[cls].astype(np.float16)
            arrays["map_classes"] = cls.astype(np.int32)
        warn: Counter = Counter()
        if not rec.labels.any():
            warn["empty_label"] += 1
        out.append((image_id, arrays, warn))
    return out


def run_cues(dataset: Dataset, out: str | os.PathLike, method: str = "points",
             points_dir: str | os.PathLike | None = None, checkpoint: str | os.PathLike | None = None,
             min_conf: float | None = None, device: str = "cpu", save_maps: bool = False,
             export_txt: str | os.PathLike | None = None, workers: int = 1, force: bool = False,
             shard: tuple[int, int] | None = None) -> dict:
    """Write ``cues.h5``: per image ``points (N, 4) float32`` = x, y, class (0-based), confidence.

    Args:
        dataset: the split.
        out: the store path.
        method: ``"points"`` reads official ``x y cls conf`` files (``Peak_points/``,
            ``Center_points/``, or the demo data's ``points/`` when ``points_dir`` is None);
            ``"pam"`` / ``"cam"`` extract peaks from the activation maps of a classifier
            checkpoint (``"cam"``: PAM disabled at inference).
        min_conf: keep cues with ``conf >= min_conf`` (default :data:`DEFAULT_MIN_CONF`).
        save_maps: (pam/cam) also store ``maps (C', H, W) float16`` of the labelled classes
            and ``map_classes (C',) int32``.
        export_txt: also write the cues as official text files ``<dir>/<id>.txt``.
        workers: processes for ``points`` (pam/cam run in this process on ``device``).

    A missing points file means no cue for that image and cues of classes the image-level label
    does not list are dropped; both are counted as warnings in the summary.
    """
    out = Path(out)
    if method not in DEFAULT_MIN_CONF:
        raise BestieError(f"unknown cue method {method!r} (points, pam or cam)")
    min_conf = DEFAULT_MIN_CONF[method] if min_conf is None else float(min_conf)
    inputs = {"data": dataset.fingerprint()}
    ctx: dict[str, Any] = {"dataset": dataset, "min_conf": min_conf}
    if method == "points":
        if points_dir is None:
            points_dir = getattr(dataset, "points_dir", None)
            if points_dir is None:
                raise BestieError("--points DIR is needed: this dataset has no points/ folder", dataset.root)
        points_dir = Path(points_dir)
        if not points_dir.is_dir():
            raise BestieError("points folder not found", points_dir)
        options = {"method": "points", "min_conf": min_conf}
        inputs["points"] = _files_digest([points_dir / f"{i}.txt" for i in dataset.image_ids])
        ctx["points_dir"] = os.fspath(points_dir)
        work = _cues_from_points
    else:
        if checkpoint is None:
            raise BestieError(f"--method {method} needs --checkpoint (a classifier from train-pam)")
        if not Path(checkpoint).is_file():
            raise BestieError("checkpoint not found", checkpoint)
        options = {"method": method, "min_conf": min_conf, "kernel": PEAK_KERNEL, "topk": PEAK_TOPK,
                   "save_maps": bool(save_maps)}
        inputs["checkpoint"] = sha256_file(checkpoint)
        ctx.update(pam=method == "pam", kernel=PEAK_KERNEL, topk=PEAK_TOPK, save_maps=bool(save_maps),
                   device=device)
        work = _cues_from_maps
    writer = StoreWriter(out, CUES, options, inputs, dataset.image_ids, shard=shard, force=force)
    if writer.is_current:
        s = _up_to_date(CUES, out, writer)
    else:
        if method != "points":
            ctx["model"] = _load_model(writer, checkpoint, device, dataset.num_classes)
            workers = 1
        written, warnings = _execute(writer, work, ctx, workers, f"cues ({method})")
        s = _summary(CUES, out, writer, written, warnings)
    if export_txt is not None:
        if shard is not None:
            raise BestieError("--export-txt needs the whole split: merge the shards, then export", export_txt)
        from .export import export_points_tree

        with Store(out, stage=CUES) as st:
            sub = "Center_points" if method == "points" else "Peak_points"
            export_points_tree(dataset, export_txt, sub, lambda i: st.read(i)["points"], "export cues")
        s["export_txt"] = os.fspath(Path(export_txt) / sub)
    return s


# ----------------------------------------------------------------------------------------
# wsss
# ----------------------------------------------------------------------------------------
def check_class_mask(mask: np.ndarray, labels: np.ndarray, class_names: Sequence[str], path,
                     clean: bool = False) -> tuple[np.ndarray, Counter]:
    """Validate a WSSS class mask against the image-level label.

    Args:
        mask: ``(H, W) uint8``: 0 background, ``k + 1`` class k, 255 ignore.
        labels: ``(C,) bool``.
        class_names: for the messages.
        path: the mask's file, named in errors.
        clean: set classes the label does not list to 0 (background) instead of failing.

    Returns:
        ``(mask (H, W) uint8, warnings)``; warnings count ``cleaned_classes`` (classes removed)
        and ``no_foreground`` (a mask without any class pixel).

    Raises:
        BestieError: an index above the class count (other than 255), or (without ``clean``)
            a class the image-level label does not list.
    """
    c = len(labels)
    hist = np.bincount(mask.ravel(), minlength=256)
    present = np.flatnonzero(hist)
    bad = present[(present > c) & (present != VOID)]
    if bad.size:
        raise BestieError(f"mask index {bad[0]} is above the class count {c} (valid: 0 background, "
                          f"1..{c}, 255 ignore)", path)
    fg = present[(present >= 1) & (present <= c)]
    foreign = fg[~np.asarray(labels, bool)[fg - 1]]
    warn: Counter = Counter()
    if foreign.size:
        if not clean:
            k = int(foreign[0]) - 1
            raise BestieError(f"mask has class {k} ({class_names[k]}) that the image-level label does "
                              "not list (use --clean to set such pixels to background)", path)
        lut = np.arange(256, dtype=np.uint8)
        lut[foreign] = 0
        mask = lut[mask]
        warn["cleaned_classes"] += int(foreign.size)
    if fg.size == foreign.size:
        warn["no_foreground"] += 1
    return mask, warn


def _wsss_import(ctx: Mapping, ids: list[str]) -> list:
    ds: Dataset = ctx["dataset"]
    out = []
    for image_id in ids:
        rec = ds.record(image_id)
        path = Path(ctx["import_dir"]) / f"{image_id}.png"
        mask = read_index_png(path, (rec.height, rec.width))
        mask, warn = check_class_mask(mask, rec.labels, ds.class_names, path, clean=ctx["clean"])
        out.append((image_id, {"mask": mask}, warn))
    return out


def _wsss_gt(ctx: Mapping, ids: list[str]) -> list:
    ds: Dataset = ctx["dataset"]
    out = []
    for image_id in ids:
        rec = ds.record(image_id)
        mask = ds.load_gt(rec).semantic()
        mask, warn = check_class_mask(mask, rec.labels, ds.class_names, rec.file_name, clean=True)
        out.append((image_id, {"mask": mask}, warn))
    return out


def _wsss_cam(ctx: Mapping, ids: list[str]) -> list:
    from .classifier.cam_wsss import cam_to_mask
    from .classifier.maps import activation_maps

    ds: Dataset = ctx["dataset"]
    out = []
    for image_id in ids:
        rec = ds.record(image_id)
        image = ds.load_image(rec)
        maps = activation_maps(ctx["model"], image, rec.labels, ctx["device"], pam=False)
        mask = np.asarray(cam_to_mask(maps, rec.labels, ctx["bg_threshold"]), np.uint8)
        warn: Counter = Counter()
        if not (mask[(mask != VOID)] > 0).any():
            warn["no_foreground"] += 1
        out.append((image_id, {"mask": mask}, warn))
    return out


def run_wsss(dataset: Dataset, out: str | os.PathLike, import_dir: str | os.PathLike | None = None,
             method: str | None = None, checkpoint: str | os.PathLike | None = None,
             bg_threshold: float | None = None, clean: bool = False, from_gt: bool = False,
             device: str = "cpu", workers: int = 1, force: bool = False,
             shard: tuple[int, int] | None = None) -> dict:
    """Write ``wsss.h5``: per image ``mask (H, W) uint8`` (0 background, k + 1 class k, 255 ignore).

    Exactly one source:

    - ``import_dir``: index PNGs ``<dir>/<id>.png`` (the official ``WSSS_maps/``, VOC palette:
      0 background, k = class k - 1, 255 ignore), checked against the image size and the
      image-level label (see :func:`check_class_mask`; ``clean`` drops unlisted classes);
    - ``method="cam"``: a classifier checkpoint's CAMs (PAM disabled) through ``cam_to_mask``
      with ``bg_threshold``;
    - ``from_gt``: the GT class masks (the upper bound; a test oracle).
    """
    out = Path(out)
    sources = [import_dir is not None, method is not None, bool(from_gt)]
    if sum(sources) != 1:
        raise BestieError("give exactly one of --import DIR, --method cam, --from-gt")
    inputs = {"data": dataset.fingerprint()}
    ctx: dict[str, Any] = {"dataset": dataset, "clean": bool(clean)}
    if import_dir is not None:
        import_dir = Path(import_dir)
        if not import_dir.is_dir():
            raise BestieError("mask folder not found", import_dir)
        options = {"method": "import", "clean": bool(clean)}
        inputs["masks"] = _files_digest([import_dir / f"{i}.png" for i in dataset.image_ids])
        ctx["import_dir"] = os.fspath(import_dir)
        work = _wsss_import
    elif from_gt:
        options = {"method": "gt"}
        work = _wsss_gt
    else:
        if method != "cam":
            raise BestieError(f"unknown WSSS method {method!r} (cam)")
        if checkpoint is None:
            raise BestieError("--method cam needs --checkpoint (a classifier from train-pam)")
        if not Path(checkpoint).is_file():
            raise BestieError("checkpoint not found", checkpoint)
        if bg_threshold is None:
            from .classifier.cam_wsss import DEFAULT_BG_THRESHOLD

            bg_threshold = DEFAULT_BG_THRESHOLD
        options = {"method": "cam", "bg_threshold": float(bg_threshold)}
        inputs["checkpoint"] = sha256_file(checkpoint)
        ctx.update(bg_threshold=float(bg_threshold), device=device)
        work = _wsss_cam
    writer = StoreWriter(out, WSSS, options, inputs, dataset.image_ids, shard=shard, force=force)
    if writer.is_current:
        return _up_to_date(WSSS, out, writer)
    if work is _wsss_cam:
        ctx["model"] = _load_model(writer, checkpoint, device, dataset.num_classes)
        workers = 1
    written, warnings = _execute(writer, work, ctx, workers, f"wsss ({options['method']})")
    return _summary(WSSS, out, writer, written, warnings)


# ----------------------------------------------------------------------------------------
# transfer
# ----------------------------------------------------------------------------------------
def _pseudo_arrays(r: Mapping) -> dict:
    return {"instances": np.asarray(r["instances"], np.uint16),
            "classes": np.asarray(r["classes"], np.int32).reshape(-1),
            "centers": np.asarray(r["centers"], np.float32).reshape(-1, 2),
            "scores": np.asarray(r["scores"], np.float32).reshape(-1)}


def _transfer(ctx: Mapping, ids: list[str]) -> list:
    ds: Dataset = ctx["dataset"]
    cues = _cached_store(ctx["cues"], CUES)
    wsss = _cached_store(ctx["wsss"], WSSS)
    out = []
    for image_id in ids:
        rec = ds.record(image_id)
        mask = wsss.read(image_id)["mask"]
        if mask.shape != (rec.height, rec.width):
            raise BestieError(f"image {image_id}: WSSS mask is {mask.shape[1]}x{mask.shape[0]} but the "
                              f"image is {rec.width}x{rec.height}", wsss.path)
        pts = cues.read(image_id)["points"].reshape(-1, 4)
        r = transfer_instances(mask, pts, rec.labels, min_area=ctx["min_area"],
                               connectivity=ctx["connectivity"], center=ctx["center"])
        arrays = _pseudo_arrays(r)
        warn: Counter = Counter()
        if len(arrays["classes"]) == 0:
            warn["no_instance"] += 1
        out.append((image_id, arrays, warn))
    return out


def _transfer_gt(ctx: Mapping, ids: list[str]) -> list:
    ds: Dataset = ctx["dataset"]
    out = []
    for image_id in ids:
        rec = ds.record(image_id)
        arrays = _pseudo_arrays(gt_to_pseudo(ds.load_gt(rec), center=ctx["center"]))
        warn: Counter = Counter()
        if len(arrays["classes"]) == 0:
            warn["no_instance"] += 1
        out.append((image_id, arrays, warn))
    return out


def run_transfer(dataset: Dataset, cues_path: str | os.PathLike | None, wsss_path: str | os.PathLike | None,
                 out: str | os.PathLike, min_area: int = 50, connectivity: int = 8, center: str = "auto",
                 from_gt: bool = False, workers: int = 1, force: bool = False,
                 shard: tuple[int, int] | None = None) -> dict:
    """Write ``pseudo.h5`` by semantic knowledge transfer (or from GT with ``from_gt``).

    Per image: ``instances (H, W) uint16`` (0 none, n = instance n - 1), ``classes (N,) int32``,
    ``centers (N, 2) float32`` (x, y), ``scores (N,) float32``.

    Args:
        cues_path, wsss_path: a ``cues`` and a ``wsss`` store covering the split (ignored with
            ``from_gt``).
        min_area: components smaller than this (pixels) are dropped.
        connectivity: 4 or 8.
        center: ``"centroid"``, ``"point"``, or ``"auto"``: the cue itself when the cues store was
            made from points files (point supervision), else the component's centroid.
        from_gt: write the GT instances in the same format (upper bound, test oracle); the
            center is the centroid (``auto``) or the deepest pixel (``point``).
    """
    out = Path(out)
    if connectivity not in (4, 8):
        raise BestieError(f"connectivity must be 4 or 8, got {connectivity}")
    if center not in ("auto", "centroid", "point"):
        raise BestieError(f"center must be auto, centroid or point, got {center!r}")
    inputs = {"data": dataset.fingerprint()}
    ctx: dict[str, Any] = {"dataset": dataset}
    if from_gt:
        center = "centroid" if center == "auto" else center
        options = {"from_gt": True, "center": center}
        ctx["center"] = center
        work = _transfer_gt
    else:
        if cues_path is None or wsss_path is None:
            raise BestieError("transfer needs --cues and --wsss (or --from-gt)")
        with open_input(cues_path, CUES, dataset, "--cues", same_data=True) as cues, \
                open_input(wsss_path, WSSS, dataset, "--wsss", same_data=True) as wsss:
            if center == "auto":
                center = "point" if cues.options.get("method") == "points" else "centroid"
            inputs.update(cues=cues.fingerprint, wsss=wsss.fingerprint)
        options = {"from_gt": False, "min_area": int(min_area), "connectivity": int(connectivity),
                   "center": center}
        ctx.update(cues=os.fspath(cues_path), wsss=os.fspath(wsss_path), min_area=int(min_area),
                   connectivity=int(connectivity), center=center)
        work = _transfer
    writer = StoreWriter(out, PSEUDO, options, inputs, dataset.image_ids, shard=shard, force=force)
    if writer.is_current:
        return _up_to_date("transfer", out, writer, instances=_count_instances(out))
    written, warnings = _execute(writer, work, ctx, workers, "transfer")
    return _summary("transfer", out, writer, written, warnings, instances=_count_instances(out))


def _count_instances(path: Path) -> int:
    with Store(path, stage=PSEUDO) as s:
        return int(sum(s._h5[f"images/{i}/classes"].shape[0] for i in s.image_ids))


# ----------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------
def _find_upstream(pseudo: Store, name: str, stage: str) -> Path | None:
    """The store next to ``pseudo`` whose bytes are the ``name`` input the pseudo store records."""
    want = pseudo.inputs.get(name)
    if not want:
        return None
    for p in sorted(pseudo.path.parent.glob("*.h5")):
        try:
            with Store(p) as s:
                if s.stage == stage and s.fingerprint == want:
                    return p
        except BestieError:
            continue
    return None


def overlay_sample(image_ids: Sequence[str], n: int) -> list[str]:
    """``n`` ids spread evenly over the split (first and last included), in split order."""
    if n <= 0 or not image_ids:
        return []
    idx = np.unique(np.linspace(0, len(image_ids) - 1, min(n, len(image_ids))).round().astype(int))
    return [image_ids[i] for i in idx]


def run_report(dataset: Dataset, pseudo_path: str | os.PathLike, out_json: str | os.PathLike | None = None,
               overlays_dir: str | os.PathLike | None = None, n_overlays: int = 8,
               wsss_path: str | os.PathLike | None = None, cues_path: str | os.PathLike | None = None,
               iou_thr: float = 0.5) -> dict:
    """Pseudo-label quality against GT instances, and overlay images.

    Counts per class and in total: pseudo instances, true positives (IoU >= ``iou_thr`` with an
    unmatched GT of the same class), GT instances, precision and recall (fractions), see
    :mod:`bestie_labels.report`. ``out_json`` gets that dict plus the pseudo store's path and
    fingerprint. ``overlays_dir`` gets ``<id>.png`` (image | WSSS | cues | pseudo instances) for
    ``n_overlays`` images spread over the split; the WSSS and cues stores are ``wsss_path`` /
    ``cues_path`` or, when not given, the stores next to ``pseudo_path`` whose fingerprints the
    pseudo store recorded as its inputs.

    Returns the summary dict with ``table`` (text) added.
    """
    from .export import overlay_panels, write_rgb_png
    from .fileio import write_json
    from .report import format_table, match_pseudo_to_gt, summarise

    counts = []
    with open_input(pseudo_path, PSEUDO, dataset, "--pseudo") as pseudo:
        for rec in tqdm(dataset.records, desc="report", unit="img", disable=None):
            d = pseudo.read(rec.image_id)
            gt = dataset.load_gt(rec)
            if d["instances"].shape != gt.void.shape:
                raise BestieError(f"image {rec.image_id}: pseudo instances are {d['instances'].shape[1]}x"
                                  f"{d['instances'].shape[0]} but the GT is {gt.void.shape[1]}x{gt.void.shape[0]}",
                                  pseudo.path)
            counts.append(match_pseudo_to_gt(d, gt, dataset.num_classes, iou_thr=iou_thr))
        summary = summarise(counts, dataset.class_names)
        summary["iou_threshold"] = iou_thr
        summary["pseudo"] = {"path": os.fspath(pseudo_path), "fingerprint": pseudo.fingerprint}
        table = format_table(summary)
        written = []
        if overlays_dir is not None:
            wsss_path = wsss_path if wsss_path is not None else _find_upstream(pseudo, "wsss", WSSS)
            cues_path = cues_path if cues_path is not None else _find_upstream(pseudo, "cues", CUES)
            wsss = open_input(wsss_path, WSSS, dataset, "--wsss") if wsss_path else None
            cues = open_input(cues_path, CUES, dataset, "--cues") if cues_path else None
            try:
                # Build every panel first: a bad image half way must leave no overlay behind.
                panels = []
                for image_id in overlay_sample(dataset.image_ids, n_overlays):
                    rec = dataset.record(image_id)
                    d = pseudo.read(image_id)
                    panels.append((Path(overlays_dir) / f"{image_id}.png",
                                   overlay_panels(dataset.load_image(rec),
                                                  wsss.read(image_id)["mask"] if wsss else None,
                                                  cues.read(image_id)["points"] if cues else None,
                                                  d["instances"], d["classes"], d["centers"])))
                for p, panel in panels:
                    write_rgb_png(p, panel)
                    written.append(os.fspath(p))
            finally:
                for s in (wsss, cues):
                    if s is not None:
                        s.close()
    if out_json is not None:
        write_json(out_json, summary, indent=1)
    return {**summary, "table": table, "overlays": written}


# ----------------------------------------------------------------------------------------
# merge, export
# ----------------------------------------------------------------------------------------
def merge(parts: Sequence[str | os.PathLike], out: str | os.PathLike, force: bool = False) -> dict:
    """Join ``--shard I/N`` stores into one (see :func:`bestie_labels.store.merge_stores`)."""
    path = merge_stores(parts, out, force=force)
    with Store(path) as s:
        return {"stage": "merge", "out": os.fspath(path), "images": len(s), "written": len(s),
                "up_to_date": False, "warnings": {}, "parts": len(parts), "merged_stage": s.stage}


EXPORT_FORMATS = ("coco", "voc", "bestie-txt")


def run_export(dataset: Dataset, pseudo_path: str | os.PathLike, fmt: str, out: str | os.PathLike) -> dict:
    """Export a pseudo store: ``coco`` (instances JSON), ``voc`` (SegmentationObject/ and
    SegmentationClass/ PNG trees under ``out``) or ``bestie-txt`` (``out/Center_points/``)."""
    from . import export

    if fmt not in EXPORT_FORMATS:
        raise BestieError(f"unknown export format {fmt!r} ({', '.join(EXPORT_FORMATS)})")
    fn = {"coco": export.export_coco, "voc": export.export_voc, "bestie-txt": export.export_bestie_txt}[fmt]
    with open_input(pseudo_path, PSEUDO, dataset, "--pseudo") as store:
        counts = fn(dataset, store, out)
    return {"stage": f"export {fmt}", "out": os.fspath(out), "images": counts["images"],
            "written": counts["images"], "up_to_date": False, "warnings": {},
            "instances": counts["instances"]}

