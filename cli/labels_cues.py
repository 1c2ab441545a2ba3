"""``bestie-labels cues``: per-image cue points (x, y, class, confidence) into ``cues.h5``."""

from __future__ import annotations

from dataclasses import replace

import click

from bestie_labels.stages.cues_options import CuesOptions

from .common import check_device, guard, open_data, replace_force
from .options import store_stage_command


@store_stage_command("cues", CuesOptions, "cues.h5")
def command(data, split, data_format, images, labels_file, out, device, workers, force, replace_own, shard,
            **options):
    """Write cues.h5: per image points (N,4) float32 = x, y, class (0-based), confidence."""
    from bestie_labels.stages import CUES, run_cues

    ds = open_data(data, split, data_format, images, labels_file)
    opts = CuesOptions(**options)
    method, export_txt = opts.method, opts.export_txt
    if method == "points" and opts.points_dir is None:
        opts = replace(opts, points_dir=ds.points_dir)
    if method != "points":
        check_device(device)
    txt = []
    if export_txt is not None:
        from pathlib import Path

        sub = Path(export_txt) / ("Center_points" if method == "points" else "Peak_points")
        txt = [sub / f"{i}.txt" for i in ds.image_ids]
    with guard("bestie-labels cues", outputs=[out, export_txt], files=txt, inputs=[opts.checkpoint, labels_file],
               input_dirs=[opts.points_dir if method == "points" else None], dataset=ds, force=force):
        s = run_cues(ds, out, **opts.keywords(), device=device, workers=workers,
                     force=replace_force(out, CUES, force, replace_own), shard=shard)
    click.echo(s.text())
