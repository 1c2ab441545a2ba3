"""A static HTML report of a split: a summary page, a paged gallery and one page per image.

The site opens from disk with no server and no network: every script and style is a local
file, the gallery's data is a script (``data.js``, not JSON fetched, which browsers refuse on
``file://``), and sorting, filtering and paging run in the browser, so the pages of 10,582
images stay small. Layout of ``out/``::

    index.html  gallery.html  data.js  static/{site.css,site.js}  plots/*.png
    img/<sid>.jpg  img/<sid>.<layer>.png   the photo and its RGBA layers (toggled on the page)
    thumb/<sid>.jpg  pages/<sid>.html      gallery thumbnail; image page
    .bestie-html.json                      what the report wrote (see :mod:`.files`)

What an image shows comes from a *renderer* (:mod:`.labels` for the label stages,
:mod:`.predictions` for a trained network): ``key(rec)`` names the inputs of an image cheaply
(its store bytes, its files' stamps), ``render(rec)`` draws it (:class:`ImageView`). An image
whose key is the one recorded is not drawn again, and no file is rewritten with the same bytes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from ...core.worker_job import worker_job
from .files import Manifest, safe_id, write_owned

HERE = Path(__file__).parent
THUMB_WIDTH = 200
MIN_DISPLAY = 320  # image pages show narrower images enlarged to this width
_CHUNK = 32


@dataclass
class Panel:
    """One panel of an image page: the photo with RGBA layers over it (each toggled by name)."""

    title: str
    layers: list[tuple[str, np.ndarray]]   # (layer name, (H, W, 4) uint8)
    legend: list[dict] = field(default_factory=list)   # {"name", "colour" "#rrggbb", "note"}
    missing: str | None = None             # the input is not there: this text instead of layers


@dataclass
class ImageView:
    """What a renderer draws for one image."""

    photo: np.ndarray                      # (H, W, 3) uint8 RGB
    panels: list[Panel]
    stats: dict                            # gallery numbers by column key, "c": class indices
    tables: list[dict] = field(default_factory=list)  # {"title", "head": [...], "rows": [[...]]}
    thumb: tuple[str, ...] = ()            # layer names drawn into the thumbnail
    extra: dict = field(default_factory=dict)  # kept for the summary, not sent to the gallery


@dataclass(frozen=True)
class Column:
    """A gallery statistic: sortable and filterable."""

    key: str
    label: str
    worse: str = "low"                     # "low": small values are the worst; "high": large are


@functools.lru_cache(maxsize=1)
def environment():
    """The jinja2 environment of the package's templates (HTML-escaped)."""
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                              autoescape=jinja2.select_autoescape(("html",)), trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True)


def render_template(name: str, **ctx) -> str:
    return environment().get_template(name).render(**ctx)


@functools.lru_cache(maxsize=1)
def site_version() -> str:
    """Hash of what draws a page (templates, scripts, drawing code): a change redraws every image."""
    h = hashlib.sha256()
    for folder in (HERE / "templates", HERE / "static", HERE.parent):
        for p in sorted(folder.glob("*.*")):
            if p.suffix in (".html", ".js", ".css", ".py"):
                h.update(p.name.encode() + p.read_bytes())
    for p in sorted(HERE.glob("*.py")):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()[:16]


def image_files(sid: str, view: ImageView) -> dict[str, bytes]:
    """The files of one image: photo, layers, thumbnail (encoded) — the page comes after."""
    import cv2

    from ..drawing import composite, encode_jpeg, encode_png

    files = {f"img/{sid}.jpg": encode_jpeg(view.photo, 90)}
    layers = {}
    for p in view.panels:
        for name, rgba in p.layers:
            layers[name] = rgba
            files[f"img/{sid}.{name}.png"] = encode_png(rgba)
    h, w = view.photo.shape[:2]
    size = (min(THUMB_WIDTH, w), max(1, round(h * min(THUMB_WIDTH, w) / w)))

    def small(a):  # composited at thumbnail size: 1/6 of the pixels of a VOC photo
        return cv2.resize(a, size, interpolation=cv2.INTER_AREA)

    thumb = composite(small(view.photo), *(small(layers[n]) for n in view.thumb if n in layers))
    files[f"thumb/{sid}.jpg"] = encode_jpeg(thumb, 80)
    return files


def page_html(site: dict, rec, sid: str, view: ImageView) -> str:
    """The image page (``pages/<sid>.html``)."""
    h, w = view.photo.shape[:2]
    panels = [{"title": p.title, "missing": p.missing, "legend": p.legend,
               "layers": [{"name": n, "src": f"../img/{sid}.{n}.png"} for n, _ in p.layers]} for p in view.panels]
    names = list(dict.fromkeys(n for p in view.panels for n, _ in p.layers))
    zoom = max(1.0, MIN_DISPLAY / max(w, 1))  # small images are shown enlarged, pixels sharp
    return render_template("image.html", site=site, image_id=rec.image_id, sid=sid, width=w, height=h,
                           dw=round(w * zoom), dh=round(h * zoom),
                           size=f"{rec.width}\u00d7{rec.height}", panels=panels, layers=[(n, site["layer_labels"].get(n, n)) for n in names],
                           tables=view.tables, stats=view.stats, root="..")


def draw_image(renderer, site: dict, rec, known: dict[str, str], force: bool, root: Path) -> dict:
    """Draw one image and write its files; returns ``{"stats", "extra", "files": {rel: hash}, "written"}``."""
    sid = safe_id(rec.image_id)
    view = renderer.render(rec)
    files = image_files(sid, view)
    files[f"pages/{sid}.html"] = page_html(site, rec, sid, view).encode()
    hashes, written = {}, 0
    for rel, data in files.items():
        hashes[rel], wrote = write_owned(root, rel, data, known.get(rel), force)
        written += wrote
    return {"stats": {**view.stats, "id": rec.image_id, "sid": sid, "w": int(rec.width), "h": int(rec.height)},
            "extra": view.extra, "files": hashes, "written": written}


def _draw_chunk(job_path: str, items: list) -> list:
    """:func:`draw_image` for ``items`` in a worker; the job (renderer, site) is loaded once per
    worker from its pickle (sending the dataset with every chunk would be slow)."""
    renderer, site, root, force = worker_job(job_path)
    return [(sid, key, draw_image(renderer, site, rec, known, force, root)) for sid, key, rec, known in items]


def _draw_all(renderer, site: dict, root: Path, items: list, workers: int, force: bool):
    """Yield chunks of ``(sid, key, result)`` for ``items`` ``(sid, key, rec, known)``."""
    if workers <= 1 or len(items) < 2 * _CHUNK:
        for sid, key, rec, known in items:
            yield [(sid, key, draw_image(renderer, site, rec, known, force, root))]
        return
    from joblib import Parallel, delayed

    chunks = [items[k:k + _CHUNK] for k in range(0, len(items), _CHUNK)]
    fd, job_path = tempfile.mkstemp(prefix="bestie-html-", suffix=".pkl")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump((renderer, site, root, force), f, protocol=pickle.HIGHEST_PROTOCOL)
        yield from Parallel(n_jobs=workers, return_as="generator")(delayed(_draw_chunk)(job_path, c) for c in chunks)
    finally:
        os.unlink(job_path)


def site_info(renderer, class_names: Sequence[str], title: str) -> dict:
    """What every page of the site shares (title, columns, default order, layer names)."""
    return {"title": title, "classes": list(class_names),
            "columns": [{"key": c.key, "label": c.label, "worse": c.worse} for c in renderer.columns],
            "sort": renderer.default_sort, "layer_labels": dict(renderer.layer_labels)}


def _stale(m: Manifest, sid: str, key: str) -> bool:
    e = m.images.get(sid)
    return e is None or e.get("key") != key or not all((m.root / rel).is_file() for rel in e.get("files", ()))


def write_images(m: Manifest, renderer, site: dict, records: list, workers: int, force: bool,
                 progress: bool = True) -> tuple[list[dict], list[dict], int]:
    """Draw the images whose inputs changed; returns (gallery rows, extras, files written), rows
    and extras in split order."""
    version = site_version()
    keyed = [(safe_id(r.image_id), hashlib.sha256((version + renderer.key(r)).encode()).hexdigest()[:20], r)
             for r in records]
    todo = [(sid, key, rec, {rel: m.files.get(rel) for rel in m.images.get(sid, {}).get("files", ())})
            for sid, key, rec in keyed if _stale(m, sid, key)]
    written, since_save = 0, 0
    bar = tqdm(total=len(todo), desc="html", unit="img", disable=None if progress else True)
    try:
        for chunk in _draw_all(renderer, site, m.root, todo, workers, force):
            for sid, key, res in chunk:
                m.files.update(res["files"])
                m.images[sid] = {"key": key, "stats": res["stats"], "extra": res["extra"],
                                 "files": sorted(res["files"])}
                written += res["written"]
            bar.update(len(chunk))
            since_save += len(chunk)
            if since_save >= 1000:  # an interrupted run keeps what it wrote as its own
                m.save()
                since_save = 0
    finally:
        bar.close()
        m.save()
    entries = [m.images[sid] for sid, _, _ in keyed]
    return [e["stats"] for e in entries], [e.get("extra", {}) for e in entries], written


def write_site(out: str | os.PathLike, renderer, records: list, title: str, summarise,
               workers: int = 1, force: bool = False, progress: bool = True) -> dict:
    """Write (or bring up to date) the report folder ``out``.

    Args:
        renderer: draws the images (see the module docstring) and names the gallery columns.
        records: the images, in split order.
        summarise: ``(gallery rows, extras) -> summary``, the context of ``index.html``
            (``tables``: ``[{"title", "head", "rows"}]``, ``plots``: ``{file name: PNG bytes}``,
            ``notes``: lines).
        workers: processes drawing images.
        force: replace files in ``out`` that the report did not write.

    Returns:
        ``{"index": path of index.html, "images": n, "written": files written this run}``.
    """
    from ...core.errors import BestieError

    root = Path(out)
    m = Manifest(root)
    m.check_folder()
    if not records:
        raise BestieError("the split has no images to report", root)
    site = site_info(renderer, renderer.class_names, title)
    rows, extras, written = write_images(m, renderer, site, records, workers, force, progress)
    summary = summarise(rows, extras)
    for name in ("site.css", "site.js"):
        written += m.write(f"static/{name}", (HERE / "static" / name).read_bytes(), force)
    data = {**{k: site[k] for k in ("title", "classes", "columns", "sort")}, "images": rows}
    written += m.write("data.js", "window.BESTIE_SITE = " + json.dumps(data, separators=(",", ":"), sort_keys=True) + ";\n", force)
    plots = []
    for name, png in summary.get("plots", {}).items():
        written += m.write(f"plots/{name}", png, force)
        plots.append(f"plots/{name}")
    ctx = dict(site=site, root=".", num_images=len(rows))
    written += m.write("index.html", render_template("index.html", summary=summary, plots=plots, **ctx), force)
    written += m.write("gallery.html", render_template("gallery.html", **ctx), force)
    m.save()
    return {"index": os.fspath(root / "index.html"), "images": len(rows), "written": int(written)}


def file_stamp(path) -> str:
    """``path:size:mtime_ns`` of a file, ``path:-`` when it is not there (a cheap change key)."""
    try:
        st = os.stat(path)
    except OSError:
        return f"{path}:-"
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def record_key(dataset, rec) -> str:
    """What one image's drawing reads from the dataset: its record, its image file and its GT
    files (VOC: its two PNGs; COCO: the JSON)."""
    root = Path(getattr(dataset, "root", "."))
    gt = [root / s / f"{rec.image_id}.png" for s in ("SegmentationObject", "SegmentationClass")] \
        if getattr(dataset, "kind", "") == "voc" else [getattr(dataset, "json_path", None)]
    labels = "".join("1" if v else "0" for v in np.asarray(rec.labels).reshape(-1))
    parts = [rec.image_id, str(rec.height), str(rec.width), labels, ",".join(dataset.class_names),
             file_stamp(rec.file_name), *(file_stamp(p) for p in gt if p is not None)]
    return "|".join(parts)
