"""``bestie-labels train-pam``: train the image-level classifier with PAM."""

from __future__ import annotations

import click

from bestie_labels.classifier.train_options import PamOptions

from .common import command, data_options, force_option, guard
from .options import dataclass_options, open_training_data, validation_options


@click.command("train-pam")
@data_options
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Checkpoint to write (e.g. pam.pt).")
@dataclass_options(PamOptions)
@validation_options("Split on which the image-level mAP is reported each epoch ('none' to skip; skipped with a "
                    "warning if it cannot be opened).")
@click.option("--resume", is_flag=True, help="Continue the run saved in --out (same options; --epochs may grow).")
@force_option
@command
def command(data, split, data_format, images, labels_file, out, val_split, val_data, val_images, resume, force,
            **options):
    """Train the PAM classifier on image-level labels (BESTIE section 3.3).

    Defaults follow the official recipe (SGD Nesterov, momentum 0.9, weight decay 5e-4, resize,
    flip, colour jitter, crop). With --backbone tiny the defaults are for the 128x128 demo data
    on a CPU, trained from scratch: 16 epochs of batch 8, lr 5e-2 for every layer, input 128,
    crop 112, no hue jitter, PAM alpha 0.4, and inference on images upscaled to 224 (a few
    minutes on 2 cores).
    The checkpoint is rewritten after every epoch; --resume continues it.
    """
    from bestie_labels.classifier.train import train_pam

    # The validation labels come from the dataset's own annotations: a --labels file lists the
    # training images, and validating on it would score training images as "val".
    ds, val, warning = open_training_data(data, split, data_format, images, labels_file, val_split, val_data,
                                          val_images)
    if warning:
        click.echo(f"WARNING: no validation mAP: {warning}", err=True)
    with guard("bestie-labels train-pam", outputs=[out], inputs=[options["pretrained"], labels_file], dataset=ds,
               force=force):
        res = train_pam(ds, out, val_ds=val, resume=resume, force=force, log=click.echo, **options)
    last = res["history"][-1] if res["history"] else None
    if last:
        click.echo(f"wrote {res['path']} (epoch {res['epoch']}, val mAP {last['map']:.4f})")
