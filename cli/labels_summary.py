"""``bestie-labels summary``: the final table of a pipeline run folder."""

import click

from .common import command, force_option, guard


@click.command("summary")
@click.option("--work", default="work", show_default=True, type=click.Path(), help="Pipeline output folder.")
@click.option("--quiet", is_flag=True, help="Only write WORK/summary.json.")
@force_option
@command
def command(work, quiet, force):
    """Print (and write WORK/summary.json) pseudo-label precision/recall, mAP and COCO AP."""
    from bestie_labels.pipeline.summary import format_summary, write_summary

    from pathlib import Path

    out = Path(work) / "summary.json"
    with guard("bestie-labels summary", outputs=[out], files=[out], force=force):
        s = write_summary(work)
    if not quiet:
        click.echo(format_summary(s))
