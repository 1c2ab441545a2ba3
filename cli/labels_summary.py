"""``bestie-labels summary``: the final table of a pipeline run folder."""

import click

from .common import command


@click.command("summary")
@click.option("--work", default="work", show_default=True, type=click.Path(), help="Pipeline output folder.")
@command
def command(work):
    """Print (and write WORK/summary.json) pseudo-label precision/recall, mAP and COCO AP."""
    from bestie_labels.summary import format_summary, write_summary

    click.echo(format_summary(write_summary(work)))
