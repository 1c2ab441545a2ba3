"""``bestie-labels demo-data OUT``: write the synthetic VOC2012-layout demo dataset."""

from __future__ import annotations

import click

from .common import command, force_option, guard, seed_option


@click.command(name="demo-data")
@click.argument("out", type=click.Path())
@click.option("--images", "n_images", default=240, show_default=True, type=click.IntRange(1),
              help="Number of images (the first 75% form 'train', the rest 'val').")
@click.option("--size", default=128, show_default=True, type=click.IntRange(32),
              help="Image side in pixels (square images).")
@seed_option
@force_option
@command
def command(out, n_images, size, seed, force):
    """Write a synthetic PASCAL VOC2012 tree of textured objects to OUT.

    Four classes (disc, block, wedge, cross) with distinct shapes, colours and textures;
    several instances per class per image, many touching or overlapping. Includes
    Annotations, SegmentationClass/Object (255 void borders), train/val/trainval splits,
    class_names.txt and points/<id>.txt (one GT point per instance, 'x y cls conf').
    """
    from bestie_labels.pipeline.demo_data import make_demo_dataset
    from bestie_labels.pipeline.demo_stage import demo_options, demo_state

    opts = demo_options(n_images, size, seed)
    with guard("bestie-labels demo-data", outputs=[out], force=force):
        state = demo_state(out, opts, force=force)
        if state == "current":
            click.echo(f"demo-data: {out} is up to date ({n_images} images of {size}x{size}, seed {seed})")
            return
        path = make_demo_dataset(out, n_images=n_images, size=size, seed=seed, force=state == "replace",
                                 progress=True, marker=opts)
    click.echo(f"wrote {n_images} images of {size}x{size} to {path}")
