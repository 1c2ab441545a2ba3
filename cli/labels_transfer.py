"""``bestie-labels transfer``: semantic knowledge transfer, cues + WSSS masks -> ``pseudo.h5``."""

from __future__ import annotations

import click

from .common import (command, data_options, force_option, guard, open_data, replace_force, replace_own_option,
                     shard_option, workers_option)


@click.command(name="transfer")
@data_options
@click.option("--cues", "cues_path", type=click.Path(), default=None, help="cues.h5 from `bestie-labels cues`.")
@click.option("--wsss", "wsss_path", type=click.Path(), default=None, help="wsss.h5 from `bestie-labels wsss`.")
@click.option("--out", required=True, type=click.Path(), help="Output store (pseudo.h5).")
@click.option("--min-area", default=50, show_default=True, type=click.IntRange(0),
              help="Drop mask components smaller than this many pixels.")
@click.option("--connectivity", default="8", show_default=True, type=click.Choice(["4", "8"]))
@click.option("--center", type=click.Choice(["auto", "centroid", "point"]), default="auto", show_default=True,
              help="Instance center: auto = the point itself for point cues, else the component's centroid.")
@click.option("--from-gt", is_flag=True, help="Write the GT instances instead (upper bound, test oracle).")
@workers_option
@force_option
@replace_own_option
@shard_option
@command
def command(data, split, data_format, images, labels_file, cues_path, wsss_path, out, min_area, connectivity,
            center, from_gt, workers, force, replace_own, shard):
    """Keep a WSSS component as an instance when exactly one cue of its class falls inside it."""
    from bestie_labels.stages import PSEUDO, format_summary, run_transfer

    ds = open_data(data, split, data_format, images, labels_file)
    with guard("bestie-labels transfer", outputs=[out], inputs=[cues_path, wsss_path, labels_file], dataset=ds,
               force=force):
        # inside the guard (the output locked): --replace-own replaces a store of this stage only
        s = run_transfer(ds, cues_path, wsss_path, out, min_area=min_area, connectivity=int(connectivity),
                         center=center, from_gt=from_gt, workers=workers,
                         force=replace_force(out, PSEUDO, force, replace_own), shard=shard)
    click.echo(format_summary(s))
