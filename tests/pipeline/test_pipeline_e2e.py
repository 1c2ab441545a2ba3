"""The whole demo pipeline at a tiny size, through the same function `bestie-labels pipeline` runs.

Point supervision with the demo's class masks imported as the WSSS output: no classifier to
train (fast), and transfer must then find real instances, so the test checks outputs, not only
that files exist.
"""

import json

import pytest

from bestie_labels.pipeline.plan import PipelineConfig, run_pipeline
from bestie_labels.store.file import Store
from bestie_labels.pipeline.summary import format_summary, read_summary


@pytest.mark.slow
def test_demo_pipeline_end_to_end_then_nothing_to_do(tmp_path):
    work = tmp_path / "work"
    cfg = PipelineConfig(work=str(work), demo_images=12, demo_size=64, fit_iters="3", workers=1,
                         sup="point", wsss_dir=str(work / "demo" / "SegmentationClass"))
    times = run_pipeline(cfg, log=lambda s: None)
    assert list(times) == ["demo-data", "cues", "wsss", "transfer", "report", "export",
                           "fit", "evaluate", "evaluate-last", "summary"]
    assert all(t > 0 for t in times.values())
    for name in ("demo/class_names.txt", "cues.h5", "wsss.h5", "pseudo.h5", "report.json",
                 "pseudo_coco.json", "run/best.pt", "metrics.json", "summary.json"):
        assert (work / name).is_file(), name
    assert list((work / "overlays").glob("*.png")) and list((work / "predictions").glob("*.png"))
    s = read_summary(work)
    report = json.loads((work / "report.json").read_text())
    assert s["pseudo_labels"]["num_gt"] == report["total"]["num_gt"] > 0
    # one GT point per object inside GT class masks: transfer keeps real instances, and they match GT
    total = report["total"]
    assert total["num_pseudo"] > 0 and total["tp"] > 0
    assert total["tp"] > total["num_gt"] // 2
    coco = json.loads((work / "pseudo_coco.json").read_text())
    assert len(coco["annotations"]) == total["num_pseudo"]
    with Store(work / "pseudo.h5") as pseudo:
        assert sum(len(pseudo.read(i)["classes"]) for i in pseudo.image_ids) == total["num_pseudo"]
    assert set(s["voc"]) == {"mAP25", "mAP50", "mAP70", "mAP75"} and set(s["coco"]) == {"AP", "AP50", "AP75"}
    metrics = json.loads((work / "metrics.json").read_text())
    assert s["voc"]["mAP50"] == metrics["voc"]["mAP50"]
    assert "mAP50" in format_summary(s)
    # the report stage scores the class masks too: here the GT's own, imported
    assert s["pseudo_labels"]["wsss_miou"] == report["wsss"]["mIoU"] == 100.0
    assert "class masks mIoU=100.0" in format_summary(s)
    # a second run finds every stage current and does nothing
    assert set(run_pipeline(cfg, log=lambda s: None).values()) == {0.0}
