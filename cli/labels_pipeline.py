"""``bestie-labels pipeline``: every stage in order, each skipped when its output is current."""

import click

from bestie_labels.core.errors import BestieError
from bestie_labels.pipeline.plan import PipelineConfig
from bestie_labels.pipeline.preflight import check_pipeline_data

from .common import command, guard
from .options import dataclass_options


def _fit_batch_size(cfg: PipelineConfig) -> int:
    """fit's batch size in this pipeline: the given one, else its default for the backbone."""
    from bestie_labels.pipeline.plan import recipe
    from bestie_train.fit_options import DEFAULTS

    if cfg.batch_size:
        if not cfg.batch_size.isdigit() or int(cfg.batch_size) < 1:
            raise BestieError(f"--batch-size must be a positive integer, got {cfg.batch_size!r}")
        return int(cfg.batch_size)
    return int(DEFAULTS.get(recipe(cfg)["backbone"], DEFAULTS["tiny"])["batch_size"])


@click.command("pipeline")
@dataclass_options(PipelineConfig)
@click.option("--emit-make", type=click.Path(), default=None, help="Write Make rules for the stages instead of running them.")
@click.option("--stage", default=None, help="Run this one stage (used by the generated Make rules).")
@click.option("--dry-run", is_flag=True, help="List the stages and whether each is current.")
@command
def command(emit_make, stage, dry_run, **kw):
    """Run the whole method: demo data, train-pam, cues, train-irn, wsss, transfer, report, export, fit, evaluate."""
    from bestie_labels.pipeline import plan as P

    cfg = PipelineConfig(**kw)
    if not stage:
        click.echo(P.describe(cfg))
        for note in check_pipeline_data(cfg, _fit_batch_size(cfg)):
            click.echo(f"note: {note}")
    if emit_make:
        P.emit_makefile(cfg, emit_make)
    elif stage:
        P.run_stage(cfg, stage, log=click.echo)
    elif dry_run:
        # Nothing is written: the stamps stay as they are, so the next real run (and dry run) sees
        # the same changes. A stage after one that runs runs too, as in a real run.
        stages = P.build_stages(cfg)
        stale = False
        for s in stages:
            stale = stale or not P.is_current(cfg, s, stages)
            click.echo(f"{'to run ' if stale else 'current':8} {s.name:10} {s.command()}")
    else:
        # One pipeline per work folder (each stage also locks its own output; Make's --stage
        # runs, possibly in parallel, lock only those).
        with guard("bestie-labels pipeline", outputs=[cfg.work]):
            P.run_pipeline(cfg, log=click.echo)
        from bestie_labels.pipeline.summary import format_summary, read_summary

        click.echo(format_summary(read_summary(cfg.work)))
