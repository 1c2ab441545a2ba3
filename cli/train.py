"""``bestie-train``: the Panoptic-DeepLab-style trainer with self-refinement.

Each subcommand is a module ``cli/train_<name>.py`` holding a Click ``command``.
"""

import click

from .common import LazyGroup


@click.group(cls=LazyGroup, prefix="train", context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bestie")
def main():
    """Train, predict and evaluate the instance segmentation network."""
