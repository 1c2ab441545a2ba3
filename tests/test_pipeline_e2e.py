"""The whole demo pipeline at a tiny size, through the same function `bestie-labels pipeline` runs."""

import json

import pytest

from bestie_labels.pipeline import PipelineConfig, run_pipeline
from bestie_labels.summary import format_summary, read_summary


@pytest.mark.slow
def test_demo_pipeline_end_to_end_then_nothing_to_do(tmp_path):
    cfg = PipelineConfig(work=str(tmp_path / "work"), demo_images=12, demo_size=64, pam_epochs="1",
                         fit_iters="3", irn_epochs="1", workers=1)
    times = run_pipeline(cfg, log=lambda s: None)
    assert list(times) == ["demo-data", "train-pam", "cues", "train-irn", "wsss", "transfer", "report", "export",
                           "fit", "evaluate", "summary"]
    assert all(t > 0 for t in times.values())
    work = tmp_path / "work"
    for name in ("demo/class_names.txt", "pam.pt", "irn.pt", "cues.h5", "wsss.h5", "pseudo.h5", "report.json",
                 "pseudo_coco.json", "run/best.pt", "metrics.json", "summary.json"):
        assert (work / name).is_file(), name
    assert list((work / "overlays").glob("*.png")) and list((work / "predictions").glob("*.png"))
    s = read_summary(work)
    report = json.loads((work / "report.json").read_text())
    assert s["pseudo_labels"]["num_gt"] == report["total"]["num_gt"] > 0
    assert set(s["voc"]) == {"mAP25", "mAP50", "mAP70", "mAP75"} and set(s["coco"]) == {"AP", "AP50", "AP75"}
    metrics = json.loads((work / "metrics.json").read_text())
    assert s["voc"]["mAP50"] == metrics["voc"]["mAP50"]
    assert "mAP50" in format_summary(s)
    # a second run finds every stage current and does nothing
    assert set(run_pipeline(cfg, log=lambda s: None).values()) == {0.0}
