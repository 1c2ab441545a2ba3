"""``bestie-labels wsss``: per-image semantic class masks into ``wsss.h5``."""

from __future__ import annotations

import click

from .common import (check_device, command, data_options, device_option, guard, open_data, replace_force,
                     store_stage_options)


@click.command(name="wsss")
@data_options
@click.option("--import", "import_dir", type=click.Path(), default=None,
              help="Folder of <id>.png index masks (official WSSS_maps/: 0 background, k = class k-1, 255 ignore).")
@click.option("--method", type=click.Choice(["irn", "cam"]), default=None,
              help="irn (default with --checkpoint): random walk of CAMs within the boundaries learned by "
                   "train-irn, touching instances cut apart; cam: the plain CAM baseline from a train-pam classifier.")
@click.option("--checkpoint", type=click.Path(), default=None,
              help="irn: the checkpoint from train-irn (irn.pt); cam: the classifier from train-pam (pam.pt).")
@click.option("--bg-threshold", type=float, default=None,
              help="Constant background score in the arg-max [irn: 0.25 (IRN's sem_seg_bg_thres), cam: 0.3].")
@click.option("--radius", type=int, default=None, help="irn: random-walk neighbourhood, stride-4 pixels [5].")
@click.option("--beta", type=float, default=None, help="irn: affinity exponent [10].")
@click.option("--exp-times", type=int, default=None, help="irn: 2^N random-walk steps [8].")
@click.option("--cut-threshold", type=float, default=None,
              help="irn: boundary probability above which touching parts of a class region are cut apart [0.5; 1 = no cut].")
@click.option("--peak-split/--no-peak-split", default=None,
              help="irn: cut a class component holding several PAM peaks between them [on].")
@click.option("--clean", is_flag=True,
              help="--import: set classes the image-level label does not list to background (counted) instead of failing.")
@click.option("--from-gt", is_flag=True, help="Use the ground-truth class masks (upper bound, test oracle).")
@click.option("--out", required=True, type=click.Path(), help="Output store (wsss.h5).")
@device_option
@store_stage_options
@command
def command(data, split, data_format, images, labels_file, import_dir, method, checkpoint, bg_threshold, radius,
            beta, exp_times, cut_threshold, peak_split, clean, from_gt, out, device, workers, force, replace_own,
            shard):
    """Write wsss.h5: per image mask (H,W) uint8 (0 background, k+1 class k, 255 ignore)."""
    from bestie_labels.stages import WSSS, run_wsss

    irn = {k: v for k, v in dict(radius=radius, beta=beta, exp_times=exp_times, cut_threshold=cut_threshold,
                                  peak_split=peak_split).items()
           if v is not None}
    ds = open_data(data, split, data_format, images, labels_file)
    if method is not None or checkpoint is not None:
        check_device(device)
    with guard("bestie-labels wsss", outputs=[out], inputs=[checkpoint, labels_file], input_dirs=[import_dir],
               dataset=ds, force=force):
        s = run_wsss(ds, out, import_dir=import_dir, method=method, checkpoint=checkpoint,
                     bg_threshold=bg_threshold, clean=clean, from_gt=from_gt, device=device, workers=workers,
                     force=replace_force(out, WSSS, force, replace_own), shard=shard, irn=irn)
    click.echo(s.text())
