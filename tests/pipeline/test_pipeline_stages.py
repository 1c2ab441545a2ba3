import os
import subprocess
import time

from bestie_labels.pipeline.plan import PipelineConfig, build_stages, emit_makefile, is_current, write_stamps


def _make_all_current(cfg):
    """Pretend every stage ran, in order: outputs and done markers newer than the stamps."""
    stages = build_stages(cfg)
    write_stamps(cfg, stages)
    stamps = os.path.join(cfg.work, ".stamps")
    t = time.time() - 100
    for st in os.scandir(stamps):
        os.utime(st.path, (t - 10, t - 10))
    for s in stages:
        os.makedirs(os.path.dirname(s.output), exist_ok=True)
        for p in (s.output, os.path.join(stamps, s.name + ".done")):
            open(p, "a").close()
            os.utime(p, (t, t))
        t += 1
    return stages


def test_demo_stage_order_and_point_supervision(tmp_path):
    cls = [s.name for s in build_stages(PipelineConfig(work=str(tmp_path)))]
    assert cls == ["demo-data", "train-pam", "cues", "train-irn", "wsss", "transfer", "report", "export",
                   "fit", "evaluate", "evaluate-last", "summary"]
    point = build_stages(PipelineConfig(work=str(tmp_path), sup="point"))
    cues = next(s for s in point if s.name == "cues")
    assert "--method" in cues.argv and cues.argv[cues.argv.index("--method") + 1] == "points"
    # imported WSSS with point labels needs no classifier at all
    names = [s.name for s in build_stages(PipelineConfig(work=str(tmp_path), sup="point", wsss_dir="W"))]
    assert "train-pam" not in names


def test_changing_sup_makes_only_cues_onwards_stale(tmp_path):
    cfg = PipelineConfig(work=str(tmp_path))
    stages = _make_all_current(cfg)
    assert all(is_current(cfg, s) for s in stages)
    mk = tmp_path / "p.mk"
    cfg2 = PipelineConfig(work=str(tmp_path), sup="point")
    time.sleep(0.01)
    emit_makefile(cfg2, mk)
    stale = {s.name for s in build_stages(cfg2) if not is_current(cfg2, s)}
    assert stale == {"cues", "fit"}  # their commands changed; Make propagates from there
    # an interrupted training run leaves its checkpoint but no done marker: it is not current
    done = os.path.join(cfg.work, ".stamps", "train-pam.done")
    mtime = os.stat(done).st_mtime
    os.remove(done)
    assert not is_current(cfg, stages[1]) and stages[1].name == "train-pam"
    open(done, "a").close()
    os.utime(done, (mtime, mtime))
    out = subprocess.run(["make", "-n", "-f", str(mk), "all"], capture_output=True, text=True, check=True).stdout
    ran = [line.split("--stage ")[1].strip() for line in out.splitlines() if "--stage " in line]
    assert ran == ["cues", "transfer", "report", "export", "fit", "evaluate", "evaluate-last", "summary"]
    # an unchanged configuration leaves every stamp alone: nothing to do
    emit_makefile(cfg, mk)
    _make_all_current(cfg)
    out = subprocess.run(["make", "-n", "-f", str(mk), "all"], capture_output=True, text=True, check=True).stdout
    assert "--stage" not in out


def _argv(stages, name):
    return next(s.argv for s in stages if s.name == name)


def _opt(argv, flag):
    return argv[argv.index(flag) + 1] if flag in argv else None


def test_device_picks_the_recipe_and_make_variables_override(tmp_path):
    from bestie_labels.pipeline.plan import describe

    voc = dict(work=str(tmp_path), voc_root="/data/VOC2012", labels="/data/train_cls.txt")
    cpu = build_stages(PipelineConfig(**voc))
    assert _opt(_argv(cpu, "train-pam"), "--backbone") == "tiny" and _opt(_argv(cpu, "fit"), "--backbone") == "tiny"
    cuda = PipelineConfig(**voc, device="cuda")
    st = build_stages(cuda)
    assert _opt(_argv(st, "train-pam"), "--backbone") == "vgg16"
    assert _opt(_argv(st, "fit"), "--backbone") == "hrnet_w48" and _opt(_argv(st, "fit"), "--device") == "cuda"
    assert describe(cuda).startswith("configuration: paper settings on cuda")
    assert describe(PipelineConfig(**voc)).startswith("configuration: CPU recipe on cpu")
    over = PipelineConfig(**voc, device="cuda", cls_backbone="resnet50", backbone="hrnet_w32", pam_epochs="3",
                          fit_iters="7", batch_size="4")
    st = build_stages(over)
    assert _opt(_argv(st, "train-pam"), "--backbone") == "resnet50" and _opt(_argv(st, "train-pam"), "--epochs") == "3"
    fit = _argv(st, "fit")
    assert (_opt(fit, "--backbone"), _opt(fit, "--iters"), _opt(fit, "--batch-size")) == ("hrnet_w32", "7", "4")
    assert "fit_iters=7" in describe(over) and "batch_size=4" in describe(over)


def test_label_file_is_the_training_image_list(tmp_path):
    cfg = PipelineConfig(work=str(tmp_path), voc_root="/data/VOC2012", labels="/data/train_cls.txt")
    stages = build_stages(cfg)
    for name in ("train-pam", "cues", "wsss", "transfer", "export", "fit"):
        assert _opt(_argv(stages, name), "--labels") == "/data/train_cls.txt", name
    pam = next(s for s in stages if s.name == "train-pam")
    assert pam.inputs == ["/data/train_cls.txt"]  # not ImageSets/Segmentation/train.txt
    plain = next(s for s in build_stages(PipelineConfig(work=str(tmp_path), voc_root="/data/VOC2012"))
                 if s.name == "train-pam")
    assert plain.inputs == ["/data/VOC2012/ImageSets/Segmentation/train.txt"]


def test_both_checkpoints_are_evaluated_and_named(tmp_path):
    import json

    from bestie_labels.pipeline.summary import build_summary, format_summary

    stages = build_stages(PipelineConfig(work=str(tmp_path)))
    assert _opt(_argv(stages, "evaluate"), "--checkpoint").endswith("best.pt")
    assert _opt(_argv(stages, "evaluate-last"), "--checkpoint").endswith("last.pt")
    (tmp_path / "report.json").write_text(json.dumps({"total": {"num_pseudo": 3, "tp": 2, "num_gt": 4}}))
    (tmp_path / "metrics.json").write_text(json.dumps({"voc": {"mAP50": 61.0}, "coco": {"AP": 30.0}}))
    (tmp_path / "metrics_last.json").write_text(json.dumps({"voc": {"mAP50": 55.5}, "coco": {"AP": 28.0}}))
    s = build_summary(tmp_path)
    assert s["voc"]["mAP50"] == 61.0 and s["voc_last"]["mAP50"] == 55.5
    text = format_summary(s)
    last_line = next(line for line in text.splitlines() if line.startswith("last.pt"))
    best_line = next(line for line in text.splitlines() if line.startswith("best.pt"))
    assert "mAP50=55.5" in last_line and "mAP50=61.0" in best_line and "optimistic" in best_line


def test_summary_shows_where_the_gt_instances_were_lost(tmp_path):
    import json

    from bestie_labels.pipeline.summary import build_summary, format_summary

    lost = {"kept": 2, "no_cue": 1, "wsss_missed": 0, "merged": 1, "poor_mask": 0}
    (tmp_path / "report.json").write_text(json.dumps({"total": {"num_pseudo": 3, "tp": 2, "num_gt": 4},
                                                      "lost": {"total": lost, "per_class": {}}}))
    (tmp_path / "metrics.json").write_text(json.dumps({"voc": {"mAP50": 61.0}}))
    s = build_summary(tmp_path)
    assert s["pseudo_labels"]["lost"] == lost
    assert "GT instances    kept=2  no_cue=1  wsss_missed=0  merged=1  poor_mask=0" in format_summary(s)
    # a report without the fates (a --from-gt pseudo store) has no such line
    (tmp_path / "report.json").write_text(json.dumps({"total": {"num_pseudo": 3, "tp": 2, "num_gt": 4}}))
    assert "GT instances" not in format_summary(build_summary(tmp_path))
