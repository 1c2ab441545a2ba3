"""Training loop: outputs of a tiny run, exact resume, refusals, schedule, metrics log."""

from __future__ import annotations

import json

import pytest
import torch

from bestie_labels.datasets import open_dataset
from bestie_labels.core.errors import BestieError
from bestie_labels.stages import run_cues, run_transfer, run_wsss
from bestie_train.fit import MetricsLog, fit, lr_factor

TINY = dict(backbone="tiny", crop=32, batch_size=2, lr=1e-3, warmup=2, log_every=1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def setup(demo_root, tmp_path_factory):
    d = tmp_path_factory.mktemp("fit")
    ds = open_dataset(demo_root, split="train")
    val = open_dataset(demo_root, split="val")
    run_wsss(ds, d / "wsss.h5", from_gt=True)
    run_cues(ds, d / "cues.h5", method="points")
    run_transfer(ds, d / "cues.h5", d / "wsss.h5", d / "pseudo.h5")
    return ds, val, d / "pseudo.h5", d / "wsss.h5"


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_tiny_fit_writes_run_folder(setup, tmp_path):
    ds, val, pseudo, wsss = setup
    out = tmp_path / "run"
    r = fit(ds, pseudo, wsss, out, val_dataset=val, iters=4, val_every=2, progress=False, **TINY)
    assert r["iteration"] == 4 and r["iters"] == 4
    for name in ("last.pt", "best.pt", "metrics.jsonl", "curves.png"):
        assert (out / name).is_file(), name
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = MetricsLog(out / "metrics.jsonl").read()
    train = [x for x in rows if x["kind"] == "train"]
    vals = [x for x in rows if x["kind"] == "val"]
    assert [x["iter"] for x in train] == [1, 2, 3, 4]
    assert [x["iter"] for x in vals] == [2, 4]
    for x in train:
        # the total is Eq. (6) of the logged terms (no refined targets -> equal halves)
        want = x["semantic"] + 0.5 * (x["center_pseudo"] + x["center_refined"]) \
            + 0.5 * (x["offset_pseudo"] + x["offset_refined"])
        assert x["total"] == pytest.approx(want, rel=1e-4)
    last = _state(out / "last.pt")
    assert last["iteration"] == 4
    assert last["class_names"] == list(ds.class_names)
    assert last["options"]["backbone"] == "tiny" and last["options"]["crop"] == 32
    assert set(last) >= {"model", "optimizer", "scheduler", "scaler", "rng", "best"}
    best = _state(out / "best.pt")
    assert best["iteration"] == last["best"]["iteration"] in (2, 4)
    assert [v["best"] for v in vals].count(True) >= 1
    # warm-up then poly: the logged lr follows lr_factor (scheduler steps after each iteration)
    assert train[0]["lr"] == pytest.approx(1e-3 * lr_factor(1, 4, 2))


def test_resume_continues_exactly(setup, tmp_path):
    ds, val, pseudo, wsss = setup
    opts = dict(TINY, iters=4, val_every=100, ckpt_every=100, seed=3)
    a = tmp_path / "a"
    fit(ds, pseudo, wsss, a, progress=False, **opts)
    b = tmp_path / "b"
    r = fit(ds, pseudo, wsss, b, progress=False, stop_after=2, **opts)
    assert r["iteration"] == 2
    s2 = _state(b / "last.pt")
    assert s2["iteration"] == 2
    r = fit(ds, pseudo, wsss, b, progress=False, resume=True, **opts)
    assert r["iteration"] == 4
    sa, sb = _state(a / "last.pt"), _state(b / "last.pt")
    assert sb["iteration"] == 4
    for k, v in sa["model"].items():
        assert torch.equal(v, sb["model"][k]), k
    for k, v in sa["optimizer"]["state"].items():
        assert torch.equal(v["exp_avg_sq"], sb["optimizer"]["state"][k]["exp_avg_sq"])
    assert sa["scheduler"]["last_epoch"] == sb["scheduler"]["last_epoch"] == 4
    # the weights did move after the interruption, so the equality above is not vacuous
    assert any(not torch.equal(v, s2["model"][k]) for k, v in sa["model"].items() if v.is_floating_point())
    # two DataLoader worker processes give the same batches, hence the same weights
    w = tmp_path / "w"
    fit(ds, pseudo, wsss, w, progress=False, stop_after=2, **dict(opts, workers=2))
    sw = _state(w / "last.pt")
    for k, v in s2["model"].items():
        assert torch.equal(v, sw["model"][k]), k
    # the training curve is the same line for line (timings aside)
    strip = [{k: v for k, v in x.items() if k != "it_per_s"} for x in MetricsLog(a / "metrics.jsonl").read()]
    stripb = [{k: v for k, v in x.items() if k != "it_per_s"} for x in MetricsLog(b / "metrics.jsonl").read()]
    assert strip == stripb and len(strip) == 4


def test_ctrl_c_finishes_the_iteration_and_writes_last_pt(setup, tmp_path, monkeypatch):
    import os
    import signal

    import bestie_train.fit as fit_mod

    ds, val, pseudo, wsss = setup
    calls = {"n": 0}
    real = fit_mod.refined_targets

    def refine_then_ctrl_c(outputs, batch, opts):
        calls["n"] += 1
        if calls["n"] == 2:  # Ctrl-C in the middle of the second iteration
            os.kill(os.getpid(), signal.SIGINT)
        return real(outputs, batch, opts)

    monkeypatch.setattr(fit_mod, "refined_targets", refine_then_ctrl_c)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        fit(ds, pseudo, wsss, out, progress=False, iters=5, ckpt_every=100, **TINY)
    assert _state(out / "last.pt")["iteration"] == 2
    assert [r["iter"] for r in MetricsLog(out / "metrics.jsonl").read()] == [1, 2]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_existing_run_is_refused_without_resume_or_with_other_options(setup, tmp_path):
    ds, val, pseudo, wsss = setup
    out = tmp_path / "run"
    fit(ds, pseudo, wsss, out, progress=False, iters=1, **{k: v for k, v in TINY.items()})
    before = (out / "last.pt").read_bytes()
    with pytest.raises(BestieError, match="last.pt: the run folder already holds a checkpoint"):
        fit(ds, pseudo, wsss, out, progress=False, iters=1, **TINY)
    with pytest.raises(BestieError, match=r"last.pt: was made with other options \(lr: 0.001 -> 0.01\)"):
        fit(ds, pseudo, wsss, out, progress=False, resume=True, iters=1, **dict(TINY, lr=0.01))
    assert (out / "last.pt").read_bytes() == before
    # a finished run resumed does nothing more
    r = fit(ds, pseudo, wsss, out, progress=False, resume=True, iters=1, **TINY)
    assert r["iteration"] == 1 and r["it_per_s"] is None


def test_validation_split_without_gt_is_refused_before_training(setup, tmp_path, monkeypatch):
    ds, val, pseudo, wsss = setup
    val = open_dataset(val.root, split="val")

    def no_gt(rec):
        raise BestieError("this dataset has no ground-truth instances", rec.file_name)

    monkeypatch.setattr(val, "load_gt", no_gt)
    with pytest.raises(BestieError, match="validation split 'val' cannot be evaluated .*pass --val-split none"):
        fit(ds, pseudo, wsss, tmp_path / "run", val_dataset=val, progress=False, iters=1, **TINY)
    assert not (tmp_path / "run").exists()


def test_bad_image_in_a_loader_worker_is_one_line(setup, tmp_path):
    import shutil

    ds, val, pseudo, wsss = setup
    root = shutil.copytree(ds.root, tmp_path / "voc")
    bad = open_dataset(root, split="train")
    p = bad.records[1].file_name
    data = open(p, "rb").read()
    # cut short with its size kept (zeros after the half): the stores still match the split
    open(p, "wb").write(data[: len(data) // 2] + bytes(len(data) - len(data) // 2))
    with pytest.raises(BestieError) as e:
        fit(bad, pseudo, wsss, tmp_path / "run", progress=False, iters=10, workers=2, **TINY)
    assert str(e.value) == f"{p}: truncated JPEG (no end-of-image marker)"


def test_lr_schedule_hand_values():
    assert lr_factor(0, 100, 10) == pytest.approx(0.001)
    assert lr_factor(5, 100, 10) == pytest.approx((0.001 * 0.5 + 0.5) * 0.95 ** 0.9)
    assert lr_factor(10, 100, 10) == pytest.approx(0.9 ** 0.9)
    assert lr_factor(100, 100, 10) == 0.0
    assert lr_factor(50, 100, 0) == pytest.approx(0.5 ** 0.9)


def test_metrics_log_truncates_after_resumed_iteration(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text("".join(json.dumps({"kind": "train", "iter": i}) + "\n" for i in (1, 2, 3, 4))
                 + '{"kind": "val", "it')  # a line torn by a kill
    log = MetricsLog(p)
    assert [r["iter"] for r in log.read()] == [1, 2, 3, 4]
    log.truncate(2)
    assert p.read_text() == '{"kind": "train", "iter": 1}\n{"kind": "train", "iter": 2}\n'
    log.append({"kind": "val", "iter": 3, "mAP50": 1.5})
    assert log.read()[-1] == {"kind": "val", "iter": 3, "mAP50": 1.5}


def test_resume_force_starts_over_when_options_changed(setup, tmp_path):
    """--resume --force (what the pipeline passes): a run made with other options is replaced."""
    ds, val, pseudo, wsss = setup
    out = tmp_path / "run"
    fit(ds, pseudo, wsss, out, iters=2, val_every=100, progress=False, **TINY)
    other = dict(TINY, lr=TINY["lr"] * 2)
    with pytest.raises(BestieError, match="other options"):
        fit(ds, pseudo, wsss, out, iters=2, val_every=100, progress=False, resume=True, **other)
    r = fit(ds, pseudo, wsss, out, iters=2, val_every=100, progress=False, resume=True, force=True, **other)
    assert r["iteration"] == 2
    assert _state(out / "last.pt")["options"]["lr"] == other["lr"]
    train = [x for x in MetricsLog(out / "metrics.jsonl").read() if x["kind"] == "train"]
    assert [x["iter"] for x in train] == [1, 2]  # the old run's lines are gone


def test_last_validation_is_the_final_iterations_row(tmp_path):
    import json

    from bestie_train.fit import last_validation

    rows = [{"kind": "train", "iter": 10, "total": 1.0}, {"kind": "val", "iter": 10, "mAP50": 40.0, "best": True},
            {"kind": "val", "iter": 20, "mAP50": 35.5, "best": False}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert last_validation(tmp_path, 20) == 35.5  # not the best row's 40.0
    assert last_validation(tmp_path, 15) is None


def test_refinement_runs_from_the_first_iteration(setup, tmp_path):
    """Official start (scripts' REFINE_WARMUP=0, ``cur_iter > refine_iter`` with 1-based cur_iter):
    the refined terms differ from the pseudo ones at iteration 1; with --no-refine they are equal."""
    ds, _, pseudo, wsss = setup
    rows = {}
    for refine in (True, False):
        out = tmp_path / f"run_{refine}"
        fit(ds, pseudo, wsss, out, iters=1, progress=False, refine=refine, **TINY)
        rows[refine] = [x for x in MetricsLog(out / "metrics.jsonl").read() if x["kind"] == "train"]
    on, off = rows[True][0], rows[False][0]
    assert on["iter"] == off["iter"] == 1
    assert on["center_refined"] != on["center_pseudo"] and on["offset_refined"] != on["offset_pseudo"]
    assert off["center_refined"] == off["center_pseudo"] and off["offset_refined"] == off["offset_pseudo"]
