"""Click options built from an options dataclass, so that a default or a help text is written once.

Every field of the dataclass becomes ``--field-name`` (underscores as dashes) unless its
``metadata`` says ``cli=False``. The default is the field's; the click type comes from the
field's type and these metadata keys:

* ``help``: the help text;
* ``choices``: a :class:`click.Choice`;
* ``min`` / ``max`` / ``min_open``: a :class:`click.IntRange` or :class:`click.FloatRange`;
* ``path``: a :class:`click.Path` (the dict's items are its arguments);
* ``flag``: the option name of a ``bool`` field whose default is ``True`` (``--no-iag``); any
  ``bool`` field is a flag that sets the opposite of its default;
* anything else (``show_default``, ``metavar``, ...) goes to :func:`click.option` as it is.

The command receives each option under its field name, ready for ``Options(**values)``.
"""

from __future__ import annotations

import dataclasses
import types
import typing

import click

_OWN_KEYS = ("cli", "help", "choices", "min", "max", "min_open", "path", "flag", "name")


def _base_type(hint) -> type:
    """``int`` of ``int | None``, ``Optional[int]`` or ``int``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return hint


def _click_type(base: type, meta: typing.Mapping):
    if "choices" in meta:
        return click.Choice(list(meta["choices"]))
    if "path" in meta:
        return click.Path(**dict(meta["path"]))
    if "min" in meta or "max" in meta:
        if base is float:
            return click.FloatRange(meta.get("min"), meta.get("max"), min_open=meta.get("min_open", False))
        return click.IntRange(meta.get("min"), meta.get("max"))
    return base


def field_option(f: dataclasses.Field, hint):
    """The :func:`click.option` decorator of one dataclass field (None when ``cli=False``)."""
    meta = f.metadata
    if meta.get("cli", True) is False:
        return None
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    extra = {k: v for k, v in meta.items() if k not in _OWN_KEYS}
    base = _base_type(hint)
    if base is bool:
        name = meta.get("flag", "--" + f.name.replace("_", "-"))
        if "/" in name:  # an on / off pair, e.g. --peak-split/--no-peak-split (default None: not given)
            return click.option(name, f.name, default=default, help=meta.get("help"), **extra)
        return click.option(name, f.name, flag_value=not default, default=default, help=meta.get("help"), **extra)
    return click.option(meta.get("name", "--" + f.name.replace("_", "-")), f.name, type=_click_type(base, meta), default=default,
                        help=meta.get("help"), **extra)


def dataclass_options(cls):
    """Decorator adding the options of every field of the dataclass ``cls`` (in field order)."""
    hints = typing.get_type_hints(cls)
    return stack([o for o in (field_option(f, hints[f.name]) for f in dataclasses.fields(cls)) if o is not None])


def stack(options: list):
    """One decorator applying ``options`` so that they show in list order."""
    def decorate(fn):
        for o in reversed(options):
            fn = o(fn)
        return fn

    return decorate


def validation_options(split_help: str):
    """``--val-split`` (with ``split_help``), ``--val-data``, ``--val-images`` of the trainers."""
    return stack([
        click.option("--val-split", default="val", show_default=True, help=split_help),
        click.option("--val-data", type=click.Path(), default=None,
                     help="Validate on this dataset instead (e.g. instances_val2017.json: a COCO JSON has no splits)."),
        click.option("--val-images", type=click.Path(), default=None, help="--val-data is COCO: its image folder."),
    ])


def open_training_data(data, split, data_format, images, labels_file, val_split, val_data, val_images):
    """The training dataset of a trainer command and its validation dataset (or None) with the
    warning line when there is none; ``--val-split`` counts as the user's choice only when given
    on the command line (then a split that cannot be opened is an error, not a warning)."""
    from click.core import ParameterSource

    from bestie_labels.datasets.validation import open_validation

    from .common import open_data

    ds = open_data(data, split, data_format, images, labels_file)
    explicit = click.get_current_context().get_parameter_source("val_split") != ParameterSource.DEFAULT
    val, warning = open_validation(ds, data, val_split, explicit=explicit, data_format=data_format,
                                   images=images, val_data=val_data, val_images=val_images)
    return ds, val, warning


def store_stage_command(name: str, options_cls, store: str):
    """The decorators of a command that writes a per-image store from the dataset alone (cues,
    wsss): the dataset options, the stage's options dataclass, ``--out``, ``--device``, the store
    options (``--workers --force --replace-own --shard``) and the error wrapper, in that order."""
    from .common import command, data_options, device_option, store_stage_options

    def decorate(fn):
        fn = device_option(store_stage_options(command(fn)))
        fn = click.option("--out", required=True, type=click.Path(), help=f"Output store ({store}).")(fn)
        return click.command(name=name)(data_options(dataclass_options(options_cls)(fn)))

    return decorate
