"""``bestie-labels train-pam``: train the image-level classifier with PAM."""

from __future__ import annotations

import click

from .common import command, data_options, device_option, force_option, guard, open_data, seed_option, workers_option


@click.command("train-pam")
@data_options
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Checkpoint to write (e.g. pam.pt).")
@click.option("--backbone", type=click.Choice(["vgg16", "resnet50", "tiny"]), default="vgg16", show_default=True,
              help="vgg16 (official), resnet50, or tiny (a small CNN for the CPU demo and tests).")
@click.option("--epochs", type=click.IntRange(1), default=None,
              help="Epochs [vgg16/resnet50: 15, tiny: 16]; lr /10 at 1/3 and 2/3 of the run.")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Batch size [vgg16/resnet50: 5, tiny: 8].")
@click.option("--lr", type=float, default=None,
              help="Base lr [vgg16/resnet50: 1e-3 with x2 backbone biases, x10 new layers, x20 their biases; tiny: 5e-2 for all layers].")
@click.option("--alpha", type=click.FloatRange(0, 1), default=None,
              help="PAM controller value [0.7 as the paper; tiny: 0.4, which trains from scratch].")
@click.option("--no-pam", "no_pam", is_flag=True, help="Train a plain CAM classifier (no PAM) for comparison.")
@click.option("--pretrained", type=click.Path(dir_okay=False), default=None,
              help="Backbone ImageNet weights in torchvision's key layout (e.g. vgg16-397923af.pth). Never downloaded.")
@click.option("--input-size", type=click.IntRange(8), default=None,
              help="Shorter image side before cropping [vgg16/resnet50: 384, tiny: 128].")
@click.option("--crop-size", type=click.IntRange(8), default=None,
              help="Random square crop for training; also the shorter side at inference [321, tiny: 112].")
@click.option("--val-split", default="val", show_default=True,
              help="Split on which the image-level mAP is reported each epoch ('none' to skip; skipped with a warning if it cannot be opened).")
@click.option("--val-data", type=click.Path(), default=None,
              help="Validate on this dataset instead (e.g. instances_val2017.json: a COCO JSON has no splits).")
@click.option("--val-images", type=click.Path(), default=None, help="--val-data is COCO: its image folder.")
@click.option("--resume", is_flag=True, help="Continue the run saved in --out (same options; --epochs may grow).")
@device_option
@seed_option
@workers_option
@force_option
@command
def command(data, split, data_format, images, labels_file, out, backbone, epochs, batch_size, lr, alpha, no_pam,
            pretrained, input_size, crop_size, val_split, val_data, val_images, resume, device, seed, workers, force):
    """Train the PAM classifier on image-level labels (BESTIE section 3.3).

    Defaults follow the official recipe (SGD Nesterov, momentum 0.9, weight decay 5e-4, resize,
    flip, colour jitter, crop). With --backbone tiny the defaults are for the 128x128 demo data
    on a CPU, trained from scratch: 16 epochs of batch 8, lr 5e-2 for every layer, input 128,
    crop 112, no hue jitter, PAM alpha 0.4, and inference on images upscaled to 224 (a few
    minutes on 2 cores).
    The checkpoint is rewritten after every epoch; --resume continues it.
    """
    from click.core import ParameterSource

    from bestie_labels.classifier.train import train_pam
    from bestie_labels.datasets.validation import open_validation

    ds = open_data(data, split, data_format, images, labels_file)
    explicit = click.get_current_context().get_parameter_source("val_split") != ParameterSource.DEFAULT
    # The validation labels come from the dataset's own annotations: a --labels file lists the
    # training images, and validating on it would score training images as "val".
    val, warning = open_validation(ds, data, val_split, explicit=explicit, data_format=data_format,
                                   images=images, val_data=val_data, val_images=val_images)
    if warning:
        click.echo(f"WARNING: no validation mAP: {warning}", err=True)
    with guard("bestie-labels train-pam", outputs=[out], inputs=[pretrained, labels_file], dataset=ds, force=force):
        res = train_pam(ds, out, val_ds=val, backbone=backbone, epochs=epochs, batch_size=batch_size, lr=lr,
                        alpha=alpha, pam=not no_pam, pretrained=pretrained, device=device, seed=seed, resume=resume,
                        force=force, input_size=input_size, crop_size=crop_size, workers=workers, log=click.echo)
    last = res["history"][-1] if res["history"] else None
    if last:
        click.echo(f"wrote {res['path']} (epoch {res['epoch']}, val mAP {last['map']:.4f})")
