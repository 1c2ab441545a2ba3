"""``bestie-train fit``: train the instance network on pseudo labels."""

from __future__ import annotations

import click
from click.core import ParameterSource

from .common import command, data_options, device_option, guard, open_data, seed_option, workers_option


@click.command(name="fit")
@data_options
@click.option("--pseudo", required=True, type=click.Path(), help="Pseudo instance store (pseudo.h5 of `transfer`).")
@click.option("--wsss", required=True, type=click.Path(), help="WSSS store (wsss.h5 of `wsss`).")
@click.option("--cues", type=click.Path(), default=None,
              help="The cues store --pseudo was made from: run the transfer on every training crop (official). "
                   "Without it the full-image pseudo instances are cropped (e.g. --from-gt labels).")
@click.option("--recipe", type=click.Choice(["paper", "cpu"]), default=None,
              help="Augmentation [default: tiny cpu (uniform scale), others paper (official resize, "
                   "scales 0.7..1.3 by 0.1, photometric distortion)].")
@click.option("--out", required=True, type=click.Path(),
              help="Run folder: last.pt, best.pt, metrics.jsonl, curves.png.")
@click.option("--backbone", default="tiny", show_default=True,
              type=click.Choice(["tiny", "resnet50", "resnet101", "hrnet_w32", "hrnet_w48"]))
@click.option("--iters", type=click.IntRange(1), default=None,
              help="Training iterations [default: tiny 600, others 50000].")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Train for this many epochs instead of --iters.")
@click.option("--batch-size", type=click.IntRange(1), default=None,
              help="Global batch size, split across torchrun processes [default: tiny 8, others 16].")
@click.option("--crop", type=click.IntRange(8), default=None,
              help="Training crop side [default: tiny 128, others 416].")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Adam learning rate [default: tiny 2e-3, others 5e-5 (paper)].")
@click.option("--warmup", type=click.IntRange(0), default=None,
              help="Linear warm-up iterations [default: tiny 100, others 2000].")
@device_option
@seed_option
@workers_option
@click.option("--no-iag", "iag", flag_value=False, default=True, help="Ablation: center/offset losses on every pixel.")
@click.option("--no-refine", "refine", flag_value=False, default=True, help="Ablation: no online self-refinement.")
@click.option("--no-cluster", "cluster", flag_value=False, default=True,
              help="Ablation: no center clustering in refinement.")
@click.option("--sup", type=click.Choice(["cls", "point"]), default="cls", show_default=True,
              help="Supervision: image-level labels or points (see --points).")
@click.option("--points", "points_dir", type=click.Path(), default=None,
              help="--sup point: folder of <id>.txt point files 'x y cls conf' [default: the dataset's points/].")
@click.option("--val-split", default="val", show_default=True,
              help="Split validated every --val-every iterations (best.pt = best mAP50); 'none' to skip.")
@click.option("--val-data", type=click.Path(), default=None,
              help="Validate on this dataset instead (e.g. instances_val2017.json: a COCO JSON has no splits).")
@click.option("--val-images", type=click.Path(), default=None, help="--val-data is COCO: its image folder.")
@click.option("--val-every", type=click.IntRange(1), default=None,
              help="Validation interval in iterations [default: tiny 200, others 1000].")
@click.option("--val-flip", is_flag=True, help="Flip test-time augmentation during validation.")
@click.option("--ckpt-every", type=click.IntRange(1), default=None,
              help="Write last.pt every N iterations [default: --val-every].")
@click.option("--log-every", type=click.IntRange(1), default=10, show_default=True,
              help="Write a metrics.jsonl line every N iterations.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from last.pt (starts afresh if there is none).")
@click.option("--force", is_flag=True,
              help="Start over when --out holds a run (with --resume: only if it was made with other options or inputs).")
@click.option("--pretrained", type=click.Path(), default=None, help="Local ImageNet weights for the backbone.")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="Torch CPU threads [default: 1 for the tiny backbone on the CPU, else torch's default].")
@click.option("--no-amp", "amp", flag_value=False, default=True, help="Disable mixed precision on CUDA.")
@command
def command(data, split, data_format, images, labels_file, pseudo, wsss, cues, recipe, out, backbone, iters, epochs,
            batch_size, crop, lr, warmup, device, seed, workers, iag, refine, cluster, sup, points_dir,
            val_split, val_data, val_images, val_every, val_flip, ckpt_every, log_every, resume, force, pretrained, threads, amp):
    """Train the Panoptic-DeepLab network with instance-aware guidance and self-refinement.

    Run it with torchrun (--nproc_per_node N) for several GPUs: the same command works on one
    GPU and on the CPU. Interrupted, rerun with --resume to continue exactly where it stopped.
    """
    from bestie_train.fit import fit

    from bestie_labels.datasets.validation import open_validation

    ds = open_data(data, split, data_format, images, labels_file)
    explicit = click.get_current_context().get_parameter_source("val_split") != ParameterSource.DEFAULT
    val, warning = open_validation(ds, data, val_split, explicit=explicit, data_format=data_format,
                                   images=images, val_data=val_data, val_images=val_images)
    if warning:
        click.echo(f"Warning: {warning}; best.pt will be the final weights", err=True)
    with guard("bestie-train fit", outputs=[out], inputs=[pseudo, wsss, cues, pretrained, labels_file],
               input_dirs=[points_dir], dataset=ds):
        r = fit(ds, pseudo, wsss, out, val_dataset=val, resume=resume, force=force, backbone=backbone, iters=iters,
                epochs=epochs, batch_size=batch_size, crop=crop, lr=lr, warmup=warmup, device=device,
                seed=seed, workers=workers, iag=iag, refine=refine, cluster=cluster, sup=sup,
                val_every=val_every, val_flip=val_flip, ckpt_every=ckpt_every, log_every=log_every,
                pretrained=pretrained, points=points_dir, cues=cues, recipe=recipe, threads=threads, amp=amp)
    if r["rank"] != 0:
        return
    from bestie_train.fit import last_validation

    click.echo(f"trained {r['iteration']}/{r['iters']} iterations; wrote {out}")
    last = last_validation(out, r["iteration"])
    if last is not None:
        click.echo(f"  last.pt: val mAP50 {last:.2f} (the final weights)")
    if r["best_mAP50"] is not None:
        click.echo(f"  best.pt: val mAP50 {r['best_mAP50']:.2f} at iteration {r['best_iteration']} "
                   f"(chosen on '{val.split}' and scored on it: optimistic; report last.pt or another split)")
