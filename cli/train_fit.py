"""``bestie-train fit``: train the instance network on pseudo labels."""

from __future__ import annotations

import click

from bestie_train.fit_options import FitOptions

from .common import command, data_options, guard
from .options import dataclass_options, open_training_data, validation_options


@click.command(name="fit")
@data_options
@click.option("--pseudo", required=True, type=click.Path(), help="Pseudo instance store (pseudo.h5 of `transfer`).")
@click.option("--wsss", required=True, type=click.Path(), help="WSSS store (wsss.h5 of `wsss`).")
@click.option("--out", required=True, type=click.Path(),
              help="Run folder: last.pt, best.pt, metrics.jsonl, curves.png.")
@dataclass_options(FitOptions)
@validation_options("Split validated every --val-every iterations (best.pt = best mAP50); 'none' to skip.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from last.pt (starts afresh if there is none).")
@click.option("--force", is_flag=True,
              help="Start over when --out holds a run (with --resume: only if it was made with other options or inputs).")
@command
def command(data, split, data_format, images, labels_file, pseudo, wsss, out, val_split, val_data, val_images,
            resume, force, **options):
    """Train the Panoptic-DeepLab network with instance-aware guidance and self-refinement.

    Run it with torchrun (--nproc_per_node N) for several GPUs: the same command works on one
    GPU and on the CPU. Interrupted, rerun with --resume to continue exactly where it stopped.
    """
    from bestie_train.fit import fit

    ds, val, warning = open_training_data(data, split, data_format, images, labels_file, val_split, val_data,
                                          val_images)
    if warning:
        click.echo(f"Warning: {warning}; best.pt will be the final weights", err=True)
    with guard("bestie-train fit", outputs=[out], inputs=[pseudo, wsss, options["cues"], options["pretrained"],
                                                          labels_file], input_dirs=[options["points"]], dataset=ds):
        r = fit(ds, pseudo, wsss, out, val_dataset=val, resume=resume, force=force, **options)
    if r["rank"] == 0:
        _report(r, out, val)


def _report(r: dict, out, val) -> None:
    from bestie_train.run_log import last_validation

    click.echo(f"trained {r['iteration']}/{r['iters']} iterations; wrote {out}")
    last = last_validation(out, r["iteration"])
    if last is not None:
        click.echo(f"  last.pt: val mAP50 {last:.2f} (the final weights)")
    if r["best_mAP50"] is not None:
        click.echo(f"  best.pt: val mAP50 {r['best_mAP50']:.2f} at iteration {r['best_iteration']} "
                   f"(chosen on '{val.split}' and scored on it: optimistic; report last.pt or another split)")
