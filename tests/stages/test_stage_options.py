"""The label commands' options written once (issue 22): ``CuesOptions`` / ``WsssOptions`` build
the ``cues`` / ``wsss`` options and hand the stage functions exactly what was given."""

from __future__ import annotations

import pytest

from badinput_helpers import invoke, make_tiny_tree
from bestie_labels.stages.cues_options import CuesOptions
from bestie_labels.stages.wsss_options import WsssOptions


def test_wsss_options_give_run_wsss_only_the_irn_settings_given():
    kw = WsssOptions(checkpoint="irn.pt", radius=3, peak_split=False, cut_threshold=1.0).keywords()
    assert kw["irn"] == {"radius": 3, "cut_threshold": 1.0, "peak_split": False}
    assert kw["checkpoint"] == "irn.pt" and kw["method"] is None and kw["clean"] is False
    assert WsssOptions().keywords()["irn"] == {}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_tiny_tree(tmp_path_factory.mktemp("opts") / "voc")


def _captured(monkeypatch, name: str) -> dict:
    import bestie_labels.stages as stages
    from bestie_labels.stages.engine import StageSummary

    seen = {}

    def fake(ds, out, **kw):
        seen.update(kw)
        return StageSummary(name, str(out), 0, 0)

    monkeypatch.setattr(stages, f"run_{name}", fake)
    return seen


def test_the_wsss_command_passes_its_options_through(tree, tmp_path, monkeypatch):
    seen = _captured(monkeypatch, "wsss")
    r = invoke("labels", ["wsss", "--data", tree, "--import", tree / "SegmentationClass", "--radius", "3",
                          "--no-peak-split", "--cam-scales", "1,2", "--clean", "--out", tmp_path / "w.h5"])
    assert r.exit_code == 0, r.output
    assert seen["irn"] == {"radius": 3, "peak_split": False, "cam_scales": "1,2"} and seen["clean"] is True
    assert seen["import_dir"] == str(tree / "SegmentationClass") and seen["from_gt"] is False


def test_the_cues_command_passes_its_options_through(tree, tmp_path, monkeypatch):
    seen = _captured(monkeypatch, "cues")
    r = invoke("labels", ["cues", "--data", tree, "--min-conf", "0.5", "--out", tmp_path / "c.h5"])
    assert r.exit_code == 0, r.output
    # --points not given: the dataset's own points/ folder
    assert seen["method"] == "points" and seen["min_conf"] == 0.5 and str(seen["points_dir"]) == str(tree / "points")
    assert CuesOptions().keywords() == {"method": "points", "points_dir": None, "checkpoint": None, "min_conf": None,
                                        "scales": None, "peak_kernel": None, "save_maps": False, "export_txt": None}
