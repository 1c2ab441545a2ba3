"""``bestie-train predict``: instance masks of a split from a checkpoint."""

from __future__ import annotations

import click

from .common import command, data_options, device_option, force_option, guard, open_data, sample_files
from .inference_options import checkpoint_option, flip_option, vis_options


@click.command(name="predict")
@checkpoint_option
@data_options(split="val")
@click.option("--out", required=True, type=click.Path(), help="JSON file to write.")
@flip_option
@click.option("--format", "fmt", type=click.Choice(["results", "coco"]), default="results", show_default=True,
              help="results: COCO results list (for evaluate); coco: instances JSON (e.g. to train Mask R-CNN).")
@vis_options
@device_option
@force_option
@command
def command(checkpoint, data, split, data_format, images, labels_file, out, flip, fmt, vis_dir, num_vis, device, force):
    """Predict instance masks at the original resolution and write them as COCO JSON."""
    from bestie_train.predict import predict

    ds = open_data(data, split, data_format, images, labels_file)
    files = [out, *sample_files(vis_dir, ds.image_ids, num_vis)]
    with guard("bestie-train predict", outputs=[out, vis_dir], files=files, inputs=[checkpoint, labels_file],
               dataset=ds, force=force):
        r = predict(checkpoint, ds, out, flip=flip, fmt=fmt, device=device, vis_dir=vis_dir, num_vis=num_vis)
    click.echo(f"wrote {r['instances']} instances on {r['images']} images to {out}")
    if vis_dir:
        click.echo(f"wrote figures to {vis_dir}")
