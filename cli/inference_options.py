"""Options shared by the commands that run a trained network (``bestie-train predict`` /
``evaluate``): the checkpoint, flip test-time augmentation and the figures."""

from __future__ import annotations

import click

checkpoint_option = click.option("--checkpoint", required=True, type=click.Path(),
                                 help="best.pt or last.pt of a run, or an official BESTIE_HRNet48_*.pt.")
flip_option = click.option("--flip/--no-flip", default=None,
                           help="Horizontal-flip test-time augmentation [default: on for a point-supervised "
                                "checkpoint].")


def vis_options(fn):
    """``--vis DIR --num-vis N``: figures (image | GT instances | predictions) of a sample."""
    fn = click.option("--num-vis", default=8, show_default=True, type=click.IntRange(0),
                      help="How many images --vis draws.")(fn)
    return click.option("--vis", "vis_dir", type=click.Path(), default=None,
                        help="Also write PNGs (image | GT instances | predictions) to this folder.")(fn)
