"""``bestie-labels pipeline``: every stage in order, each skipped when its output is current."""

import click

from .common import command, guard


@click.command("pipeline")
@click.option("--voc-root", default="", help="VOC2012 tree; empty: generate and use the demo data.")
@click.option("--labels", default="", help="Image-level label file (BESTIE format, e.g. train_cls.txt).")
@click.option("--work", default="work", show_default=True, help="Output folder.")
@click.option("--sup", type=click.Choice(["cls", "point"]), default="cls", show_default=True)
@click.option("--points-dir", default="", help="Point files for --sup point (default: <root>/points).")
@click.option("--wsss-dir", default="", help="Import these WSSS PNGs instead of the built-in IRN (train-irn + wsss).")
@click.option("--cls-backbone", default="", help="Classifier backbone (default: the recipe's: cuda vgg16, cpu tiny).")
@click.option("--backbone", default="", help="Segmentation backbone (default: the recipe's: cuda hrnet_w48, cpu tiny).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Also picks the recipe: cuda = the paper's settings, cpu = tiny networks and CPU budgets.")
@click.option("--pretrained-cls", default="", help="Local ImageNet weights for the classifier.")
@click.option("--pretrained-seg", default="", help="Local ImageNet weights for the segmentation backbone.")
@click.option("--demo-images", default=240, show_default=True, type=int)
@click.option("--demo-size", default=128, show_default=True, type=int)
@click.option("--pam-epochs", default="", help="train-pam epochs (default: the command's default for the backbone).")
@click.option("--fit-iters", default="", help="fit iterations (default: the command's default for the backbone).")
@click.option("--batch-size", default="", help="fit batch size (default: the command's default for the backbone).")
@click.option("--irn-epochs", default="", help="train-irn epochs (default: the command's default for the backbone).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--emit-make", type=click.Path(), default=None, help="Write Make rules for the stages instead of running them.")
@click.option("--stage", default=None, help="Run this one stage (used by the generated Make rules).")
@click.option("--dry-run", is_flag=True, help="List the stages and whether each is current.")
@command
def command(emit_make, stage, dry_run, **kw):
    """Run the whole method: demo data, train-pam, cues, train-irn, wsss, transfer, report, export, fit, evaluate."""
    from bestie_labels import pipeline as P

    cfg = P.PipelineConfig(**kw)
    if not stage:
        click.echo(P.describe(cfg))
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
        from bestie_labels.summary import format_summary, read_summary

        click.echo(format_summary(read_summary(cfg.work)))
