"""The per-image engine every store-writing stage runs on.

A stage is a *job* (a frozen dataclass of its options and inputs, ``job.dataset`` the split)
and a pure per-image function ``per_image(job, record) -> (arrays, warnings)``.
:func:`write_stage_store` does the rest, the same way for every stage:

1. a :class:`~bestie_labels.store.file.StoreWriter` with the options that determine the content and
   the fingerprints of the inputs; an output made with the same header is "up to date" and
   skipped, one made with another header is refused unless ``force``;
2. the images still pending (an interrupted run resumes) go through ``per_image``, with
   ``workers`` processes (joblib) when > 1; the main process alone writes, in split order;
3. on Ctrl-C the finished images are flushed to ``<out>.parts/`` first, so a rerun resumes
   from them (a :class:`BestieError`, a bad input, removes the parts instead: fixing it changes
   the header they were made with); ``finish()`` writes the store in split order, byte-identical
   however the run was split (``shard``), parallelised or interrupted.

It returns a :class:`StageSummary` (the one summary type of every stage, ``merge`` and
``export`` included); :meth:`StageSummary.text` prints it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from tqdm import tqdm

from ..core.worker_job import worker_job
from ..datasets.base import Dataset, Record
from ..core.errors import BestieError, NoSpaceError
from ..core.fileio import sha256_file
from ..store.codec import encode_arrays
from ..store.file import Store, StoreWriter
from ..store.inputs import CUES, WSSS, close_cached

#: ``per_image(job, record) -> (arrays {name: ndarray}, warnings Counter)``.
PerImage = Callable[[Any, Record], "tuple[dict, Counter]"]

_MAX_CHUNK = 16


def files_digest(paths: Sequence[Path]) -> str:
    """SHA-256 over the bytes of ``paths`` (a missing file counts as such)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(os.fspath(p.name).encode() + b"\0")
        h.update(sha256_file(p).encode() if p.is_file() else b"missing")
    return h.hexdigest()


def require_checkpoint(checkpoint, method: str, what: str) -> None:
    """``--method METHOD`` needs an existing ``--checkpoint`` (``what`` says which kind)."""
    if checkpoint is None:
        raise BestieError(f"--method {method} needs --checkpoint ({what})")
    if not Path(checkpoint).is_file():
        raise BestieError("checkpoint not found", checkpoint)


# ----------------------------------------------------------------------------------------
# the loop
# ----------------------------------------------------------------------------------------
def _run(per_image: PerImage, job, records: list[Record]) -> list:
    """``[(image_id, arrays, warnings), ...]`` for ``records``."""
    return [(rec.image_id, *per_image(job, rec)) for rec in records]




def _in_worker(per_image: PerImage, job_path: str, records: list[Record]) -> list:
    """:func:`_run` in a worker: the job is loaded once per worker from ``job_path`` (sending
    it with every chunk would pickle the whole dataset each time: 1.6 MB and 0.3 s for VOC
    train_aug, far more for COCO), and the arrays are encoded here (see
    :func:`bestie_labels.store.codec.encode_arrays`), so the process writing the store only
    appends bytes."""
    job = worker_job(job_path)
    return [(image_id, encode_arrays(arrays), warn) for image_id, arrays, warn in _run(per_image, job, records)]


def _results(per_image: PerImage, job, pending: list[str], workers: int):
    """Chunks of results in split order: one image at a time here, or joblib processes."""
    records = [job.dataset.record(i) for i in pending]
    if workers <= 1:
        yield from (_run(per_image, job, [r]) for r in records)
        return
    from joblib import Parallel, delayed

    size = max(1, min(_MAX_CHUNK, len(records) // (4 * workers)))
    chunks = [records[k:k + size] for k in range(0, len(records), size)]
    fd, job_path = tempfile.mkstemp(prefix="bestie-job-", suffix=".pkl")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(job, f, protocol=pickle.HIGHEST_PROTOCOL)
        yield from Parallel(n_jobs=workers, return_as="generator")(
            delayed(_in_worker)(per_image, job_path, c) for c in chunks)
    finally:
        os.unlink(job_path)


def execute(writer: StoreWriter, job, per_image: PerImage, workers: int, desc: str) -> tuple[int, Counter]:
    """Run ``per_image`` over ``writer.pending`` and write the store; returns the number of
    images written and this run's warning counts."""
    pending = writer.pending
    warnings: Counter = Counter()
    if not pending:
        writer.finish()  # e.g. an empty shard (--shard I/N with I beyond the image count)
        return 0, warnings
    results = _results(per_image, job, pending, workers)
    written = 0
    bar = tqdm(total=len(pending), desc=desc, unit="img", disable=None)
    try:
        for chunk in results:
            for image_id, arrays, warn in chunk:
                writer.add(image_id, arrays, {k: int(v) for k, v in sorted(warn.items()) if v} or None)
                warnings.update({k: v for k, v in warn.items() if v})
                written += 1
                bar.update()
    except BestieError as e:
        # Bad input: fixing it changes the inputs or options the parts were made with, so they
        # could never be resumed; leave nothing behind. A full disk keeps them: a rerun resumes.
        if not isinstance(e, NoSpaceError):
            shutil.rmtree(writer.parts_dir, ignore_errors=True)
        raise
    except BaseException:
        # Ctrl-C (or a crash): keep what is finished; a rerun resumes after it.
        try:
            writer.flush()
        except Exception:
            pass
        discard_if_empty(writer)
        raise
    finally:
        bar.close()
        close = getattr(results, "close", None)
        if close is not None:
            close()
        close_cached()
    writer.finish()
    return written, warnings


def discard_if_empty(writer: StoreWriter) -> None:
    """Remove ``<out>.parts/`` when it holds no finished image (nothing to resume from)."""
    if writer.n_done == 0 and writer.parts_dir.is_dir():
        shutil.rmtree(writer.parts_dir, ignore_errors=True)


def write_stage_store(name: str, stage: str, out: Path, job, per_image: PerImage, options: Mapping,
                      inputs: Mapping, *, workers: int = 1, force: bool = False, shard=None,
                      load: Callable | None = None, extra: Callable[[], dict] | None = None) -> StageSummary:
    """Write the ``stage`` store ``out`` for ``job.dataset``; returns the summary of :func:`summary`.

    ``load(job) -> job`` runs only when there is work to do (e.g. a model to load); a job whose
    ``device`` is not the CPU then runs in this process (a CUDA context does not survive being
    sent to a worker), a CPU model goes to each of the ``workers`` with its job. ``extra()`` gives
    keys added to the summary once ``out`` is written.
    """
    try:
        writer = StoreWriter(out, stage, options, inputs, job.dataset.image_ids, shard=shard, force=force)
        if writer.is_current:
            return summary(name, out, writer, 0, up_to_date=True, **(extra() if extra else {}))
        if load is not None:
            try:
                job = load(job)
            except BaseException:
                discard_if_empty(writer)
                raise
            if str(getattr(job, "device", "cpu")).split(":")[0] != "cpu":
                workers = 1
        written, _ = execute(writer, job, per_image, workers, desc=f"{name} ({options['method']})"
                             if "method" in options else name)
    except NoSpaceError:
        # a full disk keeps finished parts (a rerun resumes), but not a folder with none of them
        parts = Path(f"{os.fspath(out)}.parts")  # StoreWriter.parts_dir (the writer may not exist yet)
        if parts.is_dir() and not any(parts.glob("part-*.h5")):
            shutil.rmtree(parts, ignore_errors=True)
        raise
    return summary(name, out, writer, written, **(extra() if extra else {}))


# ----------------------------------------------------------------------------------------
# summaries
# ----------------------------------------------------------------------------------------
def stored_warnings(path: str | os.PathLike) -> dict[str, int]:
    """Warning counts of a finished store, summed over its images.

    Each image's warnings (``missing_points_file``, ``cues_not_in_label``, ``cleaned_classes``,
    ``no_foreground``, ``no_instance``, ``empty_label``) are stored as attributes of its group,
    so the counts cover the whole store however many runs it took to write.
    """
    with Store(path) as s:
        return s.attr_totals()


@dataclass(frozen=True)
class StageSummary:
    """What a stage run did, for the CLI and the callers of the ``run_*`` functions.

    ``stage`` the stage's name (``cues``, ``transfer``, ``merge``, ``export coco``, ...), ``out``
    the path written, ``images`` how many the output holds, ``written`` how many this run made,
    ``up_to_date`` (nothing to do), ``warnings`` {name: count} over every image of ``out``, and
    ``extra`` the stage's own counts (``instances``, ``parts``, ...), printed in this order.
    """

    stage: str
    out: str
    images: int
    written: int
    up_to_date: bool = False
    warnings: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        """One or two lines for the CLI."""
        if self.up_to_date and not self.written:
            head = f"{self.stage}: {self.out} is up to date ({self.images} images)"
        elif self.stage in (CUES, WSSS, "transfer"):
            head = f"{self.stage}: wrote {self.out} ({self.images} images, {self.written} computed now)"
        else:
            head = f"{self.stage}: wrote {self.out} ({self.images} images)"
        lines = [head]
        if self.extra:
            lines.append("  " + ", ".join(f"{k}: {v}" for k, v in self.extra.items()))
        if self.warnings:
            lines.append("  warnings: " + ", ".join(f"{k} x{v}" for k, v in self.warnings.items()))
        return "\n".join(lines)


def summary(name: str, out: Path, writer: StoreWriter, written: int, up_to_date: bool = False,
            **extra) -> StageSummary:
    """The summary of a stage run; ``warnings`` are those stored for every image of ``out``."""
    return StageSummary(name, os.fspath(out), len(writer.image_ids), written, up_to_date, stored_warnings(out),
                        extra)
