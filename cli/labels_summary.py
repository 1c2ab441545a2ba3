"""``bestie-labels summary``: the final table of a pipeline run folder."""

import click

from .common import command


@click.command("summary")
@click.option("--work", default="work", show_default=True, type=click.Path(), help="Pipeline output folder.")
@click.option("--quiet", is_flag=True, help="Only write WORK/summary.json.")
@command
def command(work, quiet):
    """Print (and write WORK/summary.json) pseudo-label precision/recall, mAP and COCO AP."""
    from bestie_labels.summary import format_summary, write_summary

    s = write_summary(work)
    if not quiet:
        click.echo(format_summary(s))
