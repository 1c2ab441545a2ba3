"""``bestie-labels export``: pseudo instances as COCO JSON, VOC PNGs or official BESTIE text."""

from __future__ import annotations

import click

from .common import command, data_options, force_option, guard, open_data


@click.command(name="export")
@data_options
@click.option("--pseudo", "pseudo_path", required=True, type=click.Path(), help="pseudo.h5 from `bestie-labels transfer`.")
@click.option("--format", "fmt", type=click.Choice(["coco", "voc", "bestie-txt"]), default="coco", show_default=True,
              help="coco: instances JSON (RLE); voc: OUT/SegmentationObject + OUT/SegmentationClass PNGs; "
                   "bestie-txt: OUT/Center_points/<id>.txt.")
@click.option("--out", required=True, type=click.Path(), help="JSON file (coco) or folder (voc, bestie-txt).")
@force_option
@command
def command(data, split, data_format, images, labels_file, pseudo_path, fmt, out, force):
    """Export a pseudo-label store for other trainers (detectron2, MMDetection, official BESTIE)."""
    from bestie_labels.stages import run_export

    from pathlib import Path

    ds = open_data(data, split, data_format, images, labels_file)
    subs = {"coco": [], "voc": ["SegmentationObject", "SegmentationClass"], "bestie-txt": ["Center_points"]}.get(fmt, [])
    ext = ".txt" if fmt == "bestie-txt" else ".png"
    files = [Path(out) / s / f"{i}{ext}" for s in subs for i in ds.image_ids] if subs else [out]
    with guard("bestie-labels export", outputs=[out], files=files, inputs=[pseudo_path, labels_file], dataset=ds,
               force=force):
        s = run_export(ds, pseudo_path, fmt, out)
    click.echo(s.text())
