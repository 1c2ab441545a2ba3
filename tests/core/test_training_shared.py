"""The pieces both trainers share (bestie_labels.core.training) and the options built from dataclasses."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from bestie_labels.core.errors import BestieError
from bestie_labels.core.option_fields import NOT_AN_OPTION, option
from bestie_labels.core.training import previous_run, rng_state, set_rng_state
from bestie_cli.options import dataclass_options


def _draws():
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]


def test_rng_state_round_trip_restores_every_generator():
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    st = rng_state()
    a = _draws()
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    set_rng_state(st)
    assert _draws() == a


def test_set_rng_state_reads_the_older_fit_layout():
    """fit checkpoints written before the shared module keep the Python state as the 625 ints
    followed by the version; resuming one must restore Python's generator too."""
    random.seed(5)
    version, internal, _ = random.getstate()
    st = rng_state()
    st["python"] = list(internal) + [version]
    want = [random.random() for _ in range(3)]
    random.seed(6)
    set_rng_state(st)
    assert [random.random() for _ in range(3)] == want


def test_previous_run_decisions(tmp_path):
    ck = tmp_path / "last.pt"
    calls = []

    def load(p):
        calls.append(p)
        return {"ok": p.read_text() == "same"}

    def check(c):
        if not c["ok"]:
            raise BestieError("was made with other options")

    assert previous_run(ck, True, False, load, check, exists="exists") is None  # nothing to resume
    ck.write_text("same")
    with pytest.raises(BestieError, match="last.pt: exists"):
        previous_run(ck, False, False, load, check, exists="exists")
    calls.clear()  # the refusal reads the file: a checkpoint is told from another file (issue 23)
    assert previous_run(ck, False, True, load, check, exists="exists") is None and not calls

    def not_a_checkpoint(p):
        raise BestieError("cannot read checkpoint", p)

    with pytest.raises(BestieError, match=r"last.pt: exists and is not a checkpoint of this command \(cannot read"):
        previous_run(ck, False, False, not_a_checkpoint, check, exists="exists")
    assert previous_run(ck, True, False, load, check, exists="exists") == {"ok": True}
    ck.write_text("other")
    with pytest.raises(BestieError, match="other options"):
        previous_run(ck, True, False, load, check, exists="exists")
    assert previous_run(ck, True, True, load, check, exists="exists") is None  # --resume --force


@dataclass
class _Opts:
    name: str = option("a", "The name.", choices=("a", "b"), show_default=True)
    count: int | None = option(None, "How many.", min=2)
    rate: float = option(0.5, "The rate.", min=0, min_open=True)
    fancy: bool = option(True, "No fancy.", flag="--plain")
    verbose: bool = option(False, "Talk.")
    hidden: dict = field(default_factory=dict, metadata=NOT_AN_OPTION)


@click.command()
@dataclass_options(_Opts)
def _cmd(**kw):
    click.echo(repr(_Opts(**kw)))


@pytest.mark.parametrize("args, want", [
    ([], _Opts()),
    (["--name", "b", "--count", "3", "--rate", "2", "--plain", "--verbose"],
     _Opts(name="b", count=3, rate=2.0, fancy=False, verbose=True)),
])
def test_dataclass_options_defaults_and_flags(args, want):
    r = CliRunner().invoke(_cmd, args)
    assert r.exit_code == 0, r.output
    assert r.output.strip() == repr(want)


@pytest.mark.parametrize("args, error", [(["--count", "1"], "Invalid value for '--count'"),
                                         (["--rate", "0"], "Invalid value for '--rate'"),
                                         (["--name", "c"], "Invalid value for '--name'"),
                                         (["--hidden", "x"], "No such option '--hidden'")])
def test_dataclass_options_ranges_and_hidden_fields(args, error):
    r = CliRunner().invoke(_cmd, args)
    assert r.exit_code == 2 and error in r.output, r.output


def test_dataclass_options_help_and_defaults_shown():
    out = CliRunner().invoke(_cmd, ["--help"], terminal_width=200).output
    assert "The name.  [default: a]" in out and "--plain" in out and "--fancy" not in out
    assert "How many.  [x>=2]" in out


@pytest.mark.parametrize("group, name, cls", [
    ("train", "fit", "bestie_train.fit_options:FitOptions"),
    ("labels", "train-pam", "bestie_labels.classifier.train_options:PamOptions"),
    ("labels", "pipeline", "bestie_labels.pipeline.plan:PipelineConfig"),
])
def test_commands_take_their_defaults_from_the_dataclass(group, name, cls):
    """Every option field of the command's dataclass is an option with the field's default."""
    import dataclasses
    import importlib

    from bestie_cli.labels import main as labels
    from bestie_cli.train import main as train

    mod, attr = cls.split(":")
    klass = getattr(importlib.import_module(mod), attr)
    cmd = (train if group == "train" else labels).get_command(None, name)
    params = {p.name: p for p in cmd.params}
    fields = [f for f in dataclasses.fields(klass) if f.metadata.get("cli", True)]
    assert len(fields) >= 12
    for f in fields:
        assert params[f.name].default == f.default, f.name
