"""``bestie-labels cues``: per-image cue points (x, y, class, confidence) into ``cues.h5``."""

from __future__ import annotations

import click

from .common import (check_device, command, data_options, device_option, guard, open_data, replace_force,
                     store_stage_options)


@click.command(name="cues")
@data_options
@click.option("--method", type=click.Choice(["points", "pam", "cam"]), default="points", show_default=True,
              help="points: read official 'x y cls conf' files; pam / cam: peaks of a classifier's "
                   "activation maps (cam: PAM disabled at inference).")
@click.option("--points", "points_dir", type=click.Path(), default=None,
              help="Folder of <id>.txt point files (Peak_points/, Center_points/); default: the demo data's points/.")
@click.option("--checkpoint", type=click.Path(), default=None, help="Classifier checkpoint (from train-pam) for pam / cam.")
@click.option("--min-conf", type=float, default=None,
              help="Keep cues with conf >= this. Default: 0 for points, 0.7 for pam / cam "
                   "(the official training threshold on Peak_points).")
@click.option("--save-maps", is_flag=True, help="pam / cam: also store the activation maps (float16).")
@click.option("--export-txt", type=click.Path(), default=None,
              help="Also write the cues as official text files under DIR/Center_points or DIR/Peak_points.")
@click.option("--out", required=True, type=click.Path(), help="Output store (cues.h5).")
@device_option
@store_stage_options
@command
def command(data, split, data_format, images, labels_file, method, points_dir, checkpoint, min_conf,
            save_maps, export_txt, out, device, workers, force, replace_own, shard):
    """Write cues.h5: per image points (N,4) float32 = x, y, class (0-based), confidence."""
    from bestie_labels.stages import CUES, run_cues

    ds = open_data(data, split, data_format, images, labels_file)
    if method != "points":
        check_device(device)
    txt = []
    if export_txt is not None:
        from pathlib import Path

        sub = Path(export_txt) / ("Center_points" if method == "points" else "Peak_points")
        txt = [sub / f"{i}.txt" for i in ds.image_ids]
    if method == "points" and points_dir is None:
        points_dir = ds.points_dir
    with guard("bestie-labels cues", outputs=[out, export_txt], files=txt, inputs=[checkpoint, labels_file],
               input_dirs=[points_dir if method == "points" else None], dataset=ds, force=force):
        s = run_cues(ds, out, method=method, points_dir=points_dir, checkpoint=checkpoint, min_conf=min_conf,
                     device=device, save_maps=save_maps, export_txt=export_txt, workers=workers,
                     force=replace_force(out, CUES, force, replace_own), shard=shard)
    click.echo(s.text())
