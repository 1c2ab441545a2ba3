"""Dataclass fields that carry their command-line help, and the options every trainer shares.

An options dataclass (:class:`~bestie_train.fit_options.FitOptions`,
:class:`~bestie_labels.classifier.train_options.PamOptions`,
:class:`~bestie_labels.pipeline.plan.PipelineConfig`) declares each field with :func:`option`;
:mod:`bestie_cli.options` builds the Click options from the fields, so that a default or a help text is
written once. Metadata keys: ``help``, ``choices``, ``min`` / ``max`` / ``min_open`` (a range),
``path`` (a path, the dict's items the ``click.Path`` arguments), ``flag`` (the name of a
``--no-...`` flag), ``name`` (the option's name when it is not ``--<field-name>``), ``cli=False``
(not an option); any other key goes to ``click.option``.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

#: The metadata of a field that is not a command-line option.
NOT_AN_OPTION = {"cli": False}


def option(default: Any = None, help: str | None = None, **cli) -> Any:
    """A dataclass field with ``default`` whose command-line option has ``help`` and ``cli``."""
    return field(default=default, metadata=dict(cli, help=help))


def device_option() -> Any:
    return option("cpu", choices=("cpu", "cuda"), show_default=True)


def seed_option() -> Any:
    return option(0, "Random seed.", show_default=True)


def workers_option() -> Any:
    return option(1, "Parallel worker processes for per-image work.", min=1, show_default=True)
