"""``bestie-labels report``: pseudo-label quality against GT instances, and overlay images."""

from __future__ import annotations

import click

from .common import command, data_options, force_option, guard, open_data, sample_files, workers_option


@click.command(name="report")
@data_options
@click.option("--pseudo", "pseudo_path", type=click.Path(), default=None, help="pseudo.h5 from `bestie-labels transfer`.")
@click.option("--out", "out_json", type=click.Path(), default=None, help="Write the counts as JSON (report.json).")
@click.option("--overlays", "overlays_dir", type=click.Path(), default=None,
              help="Write <id>.png panels (image | WSSS | cues | pseudo instances) for a sample of images.")
@click.option("--num-overlays", "n_overlays", default=8, show_default=True, type=click.IntRange(0))
@click.option("--wsss", "wsss_path", type=click.Path(), default=None,
              help="WSSS store: its mIoU against the GT class masks (per class, background included, void "
                   "ignored) is printed and written; also used for the overlays (default there: the one "
                   "next to --pseudo that made it).")
@click.option("--cues", "cues_path", type=click.Path(), default=None,
              help="Cues store for the overlays (default: the one next to --pseudo that made it).")
@click.option("--html", "html_dir", type=click.Path(), default=None,
              help="Write a static HTML report here (DIR/index.html: per-class summary and plots, a "
                   "sortable gallery of every image, image pages with cues, WSSS mask, pseudo instances "
                   "and GT); opens from disk, no server. A rerun redraws only images whose inputs changed.")
@workers_option
@force_option
@command
def command(data, split, data_format, images, labels_file, pseudo_path, out_json, overlays_dir, n_overlays,
            wsss_path, cues_path, html_dir, workers, force):
    """Pseudo instances, true positives (IoU >= 0.5 with an unmatched GT of the class), precision, recall;
    with --wsss the WSSS mIoU. Give --pseudo, --wsss or both."""
    from bestie_labels.stages import run_report

    ds = open_data(data, split, data_format, images, labels_file)
    files = [out_json, *sample_files(overlays_dir, ds.image_ids, n_overlays)]
    if html_dir is not None and pseudo_path is None:
        raise click.UsageError("--html needs --pseudo")
    # The HTML folder's files are recorded in its own manifest (bestie_labels.viz.html.files).
    with guard("bestie-labels report", outputs=[out_json, overlays_dir, html_dir], files=files,
               inputs=[pseudo_path, wsss_path, cues_path, labels_file], dataset=ds, force=force):
        r = run_report(ds, pseudo_path, out_json=out_json, overlays_dir=overlays_dir, n_overlays=n_overlays,
                       wsss_path=wsss_path, cues_path=cues_path)
        if html_dir is not None:
            from bestie_labels.stages.report_html import run_report_html

            h = run_report_html(ds, pseudo_path, html_dir, wsss_path, cues_path, summary=r, workers=workers,
                                force=force)
    click.echo(r["table"])
    if out_json:
        click.echo(f"wrote {out_json}")
    if r["overlays"]:
        click.echo(f"wrote {len(r['overlays'])} overlays to {overlays_dir}")
    if html_dir is not None:
        click.echo(f"wrote the HTML report ({h['images']} images, {h['written']} files rewritten): {h['index']}")
