"""``bestie-labels transfer``: semantic knowledge transfer, cues + WSSS masks -> ``pseudo.h5``."""

from __future__ import annotations

import click

from bestie_labels.algorithms.transfer_options import TransferOptions

from .common import command, data_options, guard, open_data, replace_force, store_stage_options
from .options import dataclass_options


@click.command(name="transfer")
@data_options
@click.option("--cues", "cues_path", type=click.Path(), default=None, help="cues.h5 from `bestie-labels cues`.")
@click.option("--wsss", "wsss_path", type=click.Path(), default=None, help="wsss.h5 from `bestie-labels wsss`.")
@click.option("--out", required=True, type=click.Path(), help="Output store (pseudo.h5).")
@dataclass_options(TransferOptions)
@store_stage_options
@command
def command(data, split, data_format, images, labels_file, cues_path, wsss_path, out, workers, force, replace_own,
            shard, **transfer):
    """Keep a WSSS component as an instance when exactly one cue of its class falls inside it;
    split one with several cues between them (cues from a classifier; --multi-cue), keep one
    with none only with --cueless keep."""
    from bestie_labels.stages import PSEUDO, run_transfer

    ds = open_data(data, split, data_format, images, labels_file)
    with guard("bestie-labels transfer", outputs=[out], inputs=[cues_path, wsss_path, labels_file], dataset=ds,
               force=force):
        # inside the guard (the output locked): --replace-own replaces a store of this stage only
        options = TransferOptions(**transfer)
        s = run_transfer(ds, cues_path, wsss_path, out, options, workers=workers,
                         force=replace_force(out, PSEUDO, force, replace_own), shard=shard)
    click.echo(s.text())
