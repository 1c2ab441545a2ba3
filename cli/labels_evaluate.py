"""``bestie-labels evaluate``: VOC mAP and COCO mask AP of a COCO results file."""

from __future__ import annotations

import click

from .common import command, data_options, force_option, guard, open_data


@click.command(name="evaluate")
@data_options(split="val")
@click.option("--predictions", "--results", "predictions", required=True, type=click.Path(),
              help="COCO results JSON (detectron2, MMDetection, loadRes): a list of {image_id, category_id, "
                   "segmentation (RLE or polygons), score}, in the dataset's own ids; or an instances JSON (score 1).")
@click.option("--out", default=None, type=click.Path(), help="Write the metrics as JSON here.")
@click.option("--verbose", is_flag=True, help="Also print pycocotools' own summary.")
@force_option
@command
def command(data, split, data_format, images, labels_file, predictions, out, verbose, force):
    """Evaluate instance masks on a split with GT.

    Prints VOC instance mAP at IoU 0.25/0.5/0.7/0.75 (per class and mean) and COCO mask
    AP/AP50/AP75, in percent. Ids are the dataset's own: a COCO dataset's category and image
    ids as in its JSON; VOC / folder: category ids 1..C in class order, image ids as documented
    (a VOC stem 2007_000032 is 2007000032). An id not of the dataset is refused in one line.
    """
    from bestie_labels.evaluation import evaluate_predictions, format_metrics
    from bestie_labels.core.fileio import write_json

    ds = open_data(data, split, data_format, images, labels_file)
    with guard("bestie-labels evaluate", outputs=[out], files=[out], inputs=[predictions, labels_file], dataset=ds,
               force=force):
        metrics = evaluate_predictions(ds, predictions, verbose=verbose)
        click.echo(format_metrics(metrics))
        if out:
            write_json(out, metrics, indent=2)
    if out:
        click.echo(f"wrote {out}")
