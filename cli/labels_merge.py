"""``bestie-labels merge``: join the stores written with ``--shard I/N`` into one."""

from __future__ import annotations

import click

from .common import command, force_option, guard


@click.command(name="merge")
@click.argument("parts", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="The merged store.")
@force_option
@command
def command(parts, out, force):
    """Join shard stores PARTS (same stage, options and inputs; no overlap; covering the split).

    The result is byte-identical to the store an unsharded run writes.
    """
    from bestie_labels.stages import merge

    with guard("bestie-labels merge", outputs=[out], inputs=list(parts), force=force):
        s = merge(list(parts), out, force=force)
    click.echo(s.text())
