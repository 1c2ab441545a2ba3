"""run_stage: one stage of the pipeline, alone."""

from bestie_labels.pipeline.plan import PipelineConfig, run_stage


def test_run_stage_alone_in_a_fresh_work_folder(tmp_path):
    """A benchmark runs the demo-data stage alone in a new folder: it works and records itself."""
    cfg = PipelineConfig(work=str(tmp_path / "work"), demo_images=6, demo_size=48)
    seconds = run_stage(cfg, "demo-data", log=lambda s: None)
    assert seconds > 0
    assert (tmp_path / "work" / ".stamps" / "demo-data.done").is_file()
    assert len(list((tmp_path / "work" / "demo" / "JPEGImages").iterdir())) == 6
