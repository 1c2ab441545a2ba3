"""``bestie-labels wsss``: per-image semantic class masks into ``wsss.h5``."""

from __future__ import annotations

import click

from bestie_labels.stages.wsss_options import WsssOptions

from .common import check_device, guard, open_data, replace_force
from .options import store_stage_command


@store_stage_command("wsss", WsssOptions, "wsss.h5")
def command(data, split, data_format, images, labels_file, out, device, workers, force, replace_own, shard,
            **options):
    """Write wsss.h5: per image mask (H,W) uint8 (0 background, k+1 class k, 255 ignore)."""
    from bestie_labels.stages import WSSS, run_wsss

    opts = WsssOptions(**options)
    ds = open_data(data, split, data_format, images, labels_file)
    if opts.method is not None or opts.checkpoint is not None:
        check_device(device)
    with guard("bestie-labels wsss", outputs=[out], inputs=[opts.checkpoint, labels_file],
               input_dirs=[opts.import_dir], dataset=ds, force=force):
        s = run_wsss(ds, out, **opts.keywords(), device=device, workers=workers,
                     force=replace_force(out, WSSS, force, replace_own), shard=shard)
    click.echo(s.text())
