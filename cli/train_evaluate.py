"""``bestie-train evaluate``: predict a split with a checkpoint and evaluate it."""

from __future__ import annotations

import click

from .common import (command, data_options, device_option, force_option, guard, open_data, sample_files,
                     workers_option)
from .inference_options import checkpoint_option, flip_option, vis_options


@click.command(name="evaluate")
@checkpoint_option
@data_options(split="val")
@click.option("--out", default=None, type=click.Path(), help="Write the metrics as JSON here.")
@flip_option
@vis_options
@click.option("--html", "html_dir", default=None, type=click.Path(),
              help="Write a static HTML report here (DIR/index.html): every image's predictions (score, TP / FP "
                   "at IoU 0.5) against its GT, the per-class AP table and the training curves.")
@click.option("--metrics-log", default=None, type=click.Path(),
              help="The run's metrics.jsonl for the curves of --html (default: the one next to --checkpoint).")
@workers_option
@device_option
@force_option
@command
def command(checkpoint, data, split, data_format, images, labels_file, out, flip, vis_dir, num_vis, html_dir,
            metrics_log, workers, device, force):
    """VOC mAP (IoU 0.25/0.5/0.7/0.75) and COCO mask AP of a checkpoint on a split, in percent.

    The same metrics and JSON as `bestie-labels evaluate` on the output of `bestie-train predict`.
    """
    from bestie_labels.evaluation import format_metrics
    from bestie_train.predict import evaluate

    ds = open_data(data, split, data_format, images, labels_file)
    files = [out, *sample_files(vis_dir, ds.image_ids, num_vis)]
    if html_dir is not None and metrics_log is None:
        from pathlib import Path

        metrics_log = Path(checkpoint).with_name("metrics.jsonl")
    # The HTML folder's files are recorded in its own manifest (bestie_labels.viz.html.files).
    with guard("bestie-train evaluate", outputs=[out, vis_dir, html_dir], files=files,
               inputs=[checkpoint, labels_file, metrics_log], dataset=ds, force=force):
        metrics = evaluate(checkpoint, ds, out=out, flip=flip, device=device, vis_dir=vis_dir, num_vis=num_vis,
                           html_dir=html_dir, metrics_log=metrics_log, workers=workers, force=force)
    click.echo(format_metrics(metrics))
    if out:
        click.echo(f"wrote {out}")
    if html_dir is not None:
        click.echo(f"wrote the HTML report: {metrics['html']}")
