"""``bestie-labels``: the offline label stages.

Each subcommand is a module ``cli/labels_<name>.py`` holding a Click ``command``.
"""

import click

from .common import LazyGroup


@click.group(cls=LazyGroup, prefix="labels", context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bestie")
def main():
    """Turn image-level tags or point labels into pseudo instance masks (BESTIE)."""
