"""``bestie-labels train-irn``: train IRN's boundary network from a PAM classifier's CAMs."""

from __future__ import annotations

import click

from .common import (check_device, command, data_options, device_option, force_option, guard, open_data, seed_option,
                     workers_option)


@click.command("train-irn")
@data_options
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False),
              help="The classifier from train-pam (pam.pt): its CAMs give the seeds, its trunk the features.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Checkpoint to write (e.g. irn.pt).")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Epochs [3; tiny classifier: 8].")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="Batch size [32; tiny: 8].")
@click.option("--lr", type=float, default=None, help="SGD learning rate of the boundary head, poly decay [0.1].")
@click.option("--radius", type=click.IntRange(2), default=None, help="Pairs within this many stride-4 pixels [10].")
@click.option("--fg-threshold", type=click.FloatRange(0, 1), default=None,
              help="Normalised CAM above which a pixel is a confident foreground seed [0.30].")
@click.option("--bg-threshold", type=click.FloatRange(0, 1), default=None,
              help="Normalised CAM (every labelled class) at or below which a pixel is confident background [0.05].")
@click.option("--relation", type=click.Choice(["peak", "instance", "class"]), default=None,
              help="peak: seed components, split between the PAM peaks they hold, must be cut apart; "
                   "instance: separate seed components must be cut apart; class: IRN's class-wise relations.")
@click.option("--crop-size", type=click.IntRange(8), default=None,
              help="Training crop [512; tiny: the classifier's inference size].")
@click.option("--resume", is_flag=True, help="Continue the run saved in --out (same options; --epochs may grow).")
@device_option
@seed_option
@workers_option
@force_option
@command
def command(data, split, data_format, images, labels_file, checkpoint, out, epochs, batch_size, lr, radius,
            fg_threshold, bg_threshold, relation, crop_size, resume, device, seed, workers, force):
    """Train the IRN class-boundary network (Ahn et al., CVPR 2019) from the classifier's own CAMs.

    Confident CAM regions are the seeds; a small head on the frozen classifier trunk learns
    where pixel pairs must be cut. `wsss --checkpoint irn.pt` then propagates the CAMs by a
    random walk within these boundaries and cuts touching instances apart.
    """
    from bestie_labels.irn.train import train_irn

    check_device(device)
    ds = open_data(data, split, data_format, images, labels_file)
    with guard("bestie-labels train-irn", outputs=[out], inputs=[checkpoint, labels_file], dataset=ds, force=force):
        res = train_irn(ds, checkpoint, out, epochs=epochs, batch_size=batch_size, lr=lr, radius=radius,
                        fg_threshold=fg_threshold, bg_threshold=bg_threshold, relation=relation,
                        crop_size=crop_size, device=device, seed=seed, resume=resume, force=force, workers=workers,
                        log=click.echo)
    last = res["history"][-1] if res["history"] else None
    click.echo(f"wrote {res['path']} (epoch {res['epoch']}" + (f", loss {last['loss']:.4f})" if last else ")"))
