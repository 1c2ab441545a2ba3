import os
import subprocess
import time

from bestie_labels.pipeline import PipelineConfig, build_stages, emit_makefile, is_current, write_stamps


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
                   "fit", "evaluate", "summary"]
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
    assert ran == ["cues", "transfer", "report", "export", "fit", "evaluate", "summary"]
    # an unchanged configuration leaves every stamp alone: nothing to do
    emit_makefile(cfg, mk)
    _make_all_current(cfg)
    out = subprocess.run(["make", "-n", "-f", str(mk), "all"], capture_output=True, text=True, check=True).stdout
    assert "--stage" not in out
