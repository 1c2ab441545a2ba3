"""``bestie-labels wsss``: per-image semantic class masks into ``wsss.h5``."""

from __future__ import annotations

import click

from .common import (check_device, command, data_options, device_option, force_option, guard, open_data, shard_option,
                     workers_option)


@click.command(name="wsss")
@data_options
@click.option("--import", "import_dir", type=click.Path(), default=None,
              help="Folder of <id>.png index masks (official WSSS_maps/: 0 background, k = class k-1, 255 ignore).")
@click.option("--method", type=click.Choice(["cam"]), default=None,
              help="cam: the built-in CAM baseline from a classifier checkpoint.")
@click.option("--checkpoint", type=click.Path(), default=None, help="Classifier checkpoint (from train-pam) for --method cam.")
@click.option("--bg-threshold", type=float, default=None, help="--method cam: constant background score (default 0.3).")
@click.option("--clean", is_flag=True,
              help="--import: set classes the image-level label does not list to background (counted) instead of failing.")
@click.option("--from-gt", is_flag=True, help="Use the ground-truth class masks (upper bound, test oracle).")
@click.option("--out", required=True, type=click.Path(), help="Output store (wsss.h5).")
@device_option
@workers_option
@force_option
@shard_option
@command
def command(data, split, data_format, images, labels_file, import_dir, method, checkpoint, bg_threshold,
            clean, from_gt, out, device, workers, force, shard):
    """Write wsss.h5: per image mask (H,W) uint8 (0 background, k+1 class k, 255 ignore)."""
    from bestie_labels.stages import format_summary, run_wsss

    ds = open_data(data, split, data_format, images, labels_file)
    if method is not None:
        check_device(device)
    with guard("bestie-labels wsss", outputs=[out], inputs=[checkpoint, labels_file], input_dirs=[import_dir],
               dataset=ds, force=force):
        s = run_wsss(ds, out, import_dir=import_dir, method=method, checkpoint=checkpoint,
                     bg_threshold=bg_threshold, clean=clean, from_gt=from_gt, device=device, workers=workers,
                     force=force, shard=shard)
    click.echo(format_summary(s))
