"""Interruption: SIGKILL / SIGINT at a random point, then a rerun; disk full (issue 7, item 2).

The commands run as real processes (the ``bestie-labels`` / ``bestie-train`` console scripts
next to ``sys.executable``) with ``BESTIE_PART_SIZE=1``, so that every image is its own part and a
kill lands between parts, inside a part write or inside the final copy. The kill point is drawn
from a seeded generator: after the parts folder holds ``k`` parts (``k`` random) plus a random
delay. The rerun (in-process) must give a store byte-identical to an uninterrupted run and leave
no parts or temporary files. ``fit`` is killed after its ``k``-th checkpoint and resumed with
``--resume``; its final weights must equal those of an uninterrupted run within float tolerance.
"""

from __future__ import annotations

import contextlib
import errno
import filecmp
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from badinput_helpers import console_script, invoke, make_pam_checkpoint, make_tiny_tree, snapshot

#: Train images of the kill tree (48 images of 32x32, 75% train).
N_TRAIN = 36
ENV = dict(os.environ, BESTIE_PART_SIZE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """The kill tree and the uninterrupted outputs (in-process runs) to compare against."""
    base = tmp_path_factory.mktemp("kill")
    voc = make_tiny_tree(base / "voc", n_images=48)
    ref = base / "ref"
    data = ["--data", voc, "--split", "train"]
    for args in (["cues", *data, "--out", ref / "cues.h5"],
                 ["wsss", *data, "--from-gt", "--out", ref / "wsss.h5"],
                 ["transfer", *data, "--cues", ref / "cues.h5", "--wsss", ref / "wsss.h5", "--min-area", "4",
                  "--out", ref / "pseudo.h5"]):
        r = invoke("labels", args)
        assert r.exit_code == 0, r.output
        assert f"({N_TRAIN} images, {N_TRAIN} computed now)" in r.output
    return base


@contextlib.contextmanager
def one_thread():
    """torch on one thread in this process, as in the subprocesses (``OMP_NUM_THREADS=1``)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@pytest.fixture(scope="module")
def pam_ref(tree):
    """A tiny untrained PAM checkpoint and the cues an uninterrupted ``--method pam`` run makes."""
    names = (tree / "voc" / "class_names.txt").read_text().split()
    make_pam_checkpoint(tree / "pam.pt", names)
    with one_thread():
        r = invoke("labels", _args("pam", tree, tree / "ref" / "pam_cues.h5"))
    assert r.exit_code == 0, r.output
    return tree / "ref" / "pam_cues.h5"


def _args(stage: str, base: Path, out: Path) -> list:
    data = ["--data", base / "voc", "--split", "train"]
    ref = base / "ref"
    if stage == "pam":
        # --min-conf 0: an untrained classifier's peaks are weak; keep them all.
        return ["cues", *data, "--method", "pam", "--checkpoint", base / "pam.pt", "--min-conf", "0",
                "--out", out]
    return {
        "transfer": ["transfer", *data, "--cues", ref / "cues.h5", "--wsss", ref / "wsss.h5", "--min-area", "4",
                     "--out", out],
        "cues": ["cues", *data, "--method", "points", "--points", base / "voc" / "points", "--out", out],
        "wsss": ["wsss", *data, "--from-gt", "--out", out],
    }[stage]


_REF = {"transfer": "pseudo.h5", "cues": "cues.h5", "wsss": "wsss.h5", "pam": "pam_cues.h5"}


def _n_parts(parts: Path) -> int:
    try:
        return sum(1 for p in parts.iterdir() if p.name.startswith("part-"))
    except FileNotFoundError:
        return 0


def _part_ids(parts: Path) -> set[str]:
    """Image ids held by the finished parts of an interrupted run."""
    import h5py

    ids: set[str] = set()
    for p in sorted(parts.glob("part-*.h5")):
        with h5py.File(p, "r") as h5:
            ids.update(s.decode() for s in h5["meta/image_ids"][()])
    return ids


def _kill_when(p: subprocess.Popen, parts: Path, k: int, delay: float, sig: int, timeout: float = 60) -> None:
    """Send ``sig`` to ``p`` once ``parts`` holds ``k`` parts, after ``delay`` seconds more."""
    t0 = time.time()
    while p.poll() is None and _n_parts(parts) < k and time.time() - t0 < timeout:
        time.sleep(0.002)
    time.sleep(delay)
    if p.poll() is None:
        p.send_signal(sig)


def _computed(output: str) -> int:
    return int(output.split(" computed now")[0].rsplit(", ", 1)[-1])


@pytest.mark.parametrize("stage,sig", [
    pytest.param("transfer", signal.SIGKILL, id="transfer-KILL"),
    pytest.param("transfer", signal.SIGINT, id="transfer-INT"),
    pytest.param("cues", signal.SIGKILL, id="cues-KILL"),
    pytest.param("cues", signal.SIGINT, id="cues-INT"),
    pytest.param("wsss", signal.SIGKILL, id="wsss-KILL"),
    pytest.param("pam", signal.SIGKILL, id="cues-pam-KILL", marks=pytest.mark.slow),
    pytest.param("pam", signal.SIGINT, id="cues-pam-INT", marks=pytest.mark.slow)])
def test_kill_then_rerun_is_byte_identical(tree, tmp_path, request, stage, sig):
    if stage == "pam":
        request.getfixturevalue("pam_ref")
    rng = random.Random(f"{stage}-{int(sig)}")
    out = tmp_path / "out" / _REF[stage]
    parts = out.with_name(out.name + ".parts")
    args = _args(stage, tree, out)
    k, delay = rng.randint(1, N_TRAIN // 2), rng.uniform(0.0, 0.01)
    p = subprocess.Popen([console_script("bestie-labels"), *map(str, args)], env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _kill_when(p, parts, k, delay, sig)
    _, err = p.communicate(timeout=60)
    if sig == signal.SIGKILL:
        assert p.returncode == -signal.SIGKILL, err
    else:
        assert p.returncode == 130, err
        assert "rerun the same command" in err and "resume" in err and "Traceback" not in err
    assert not out.exists(), "the final store appeared although the run was killed"
    assert _n_parts(parts) >= k
    kept = len(_part_ids(parts))  # a Ctrl-C between a part's rename and its bookkeeping may
    assert kept >= 1              # write that image again in a second part: count ids, not files
    # Rerun: resumes from the parts, ends byte-identical, leaves nothing else behind.
    if stage == "pam":
        with one_thread():
            r = invoke("labels", args)
    else:
        r = invoke("labels", args)
    assert r.exit_code == 0, r.output
    assert _computed(r.output) == N_TRAIN - kept
    assert filecmp.cmp(out, tree / "ref" / _REF[stage], shallow=False)
    assert sorted(os.listdir(out.parent)) == [out.name]


def _wrapped(code: str, args: list) -> list:
    """``python -c`` running ``code`` (patches) then ``bestie-labels ARGS``."""
    return [sys.executable, "-c", code + "\nfrom bestie_cli.labels import main\nmain(sys.argv[1:])\n", *map(str, args)]


def test_sigint_inside_del_is_not_lost(tree, tmp_path):
    """A Ctrl-C that arrives while Python runs a ``__del__`` (h5py closes files from weakref
    callbacks) is dropped by Python; the CLI's handler also flags it, and the stage stops at its
    next image with exit 130, the finished images kept, and no traceback."""
    out = tmp_path / "out" / "pseudo.h5"
    args = _args("transfer", tree, out)
    code = ("import os, signal, sys\n"
            "import bestie_labels.stages.transfer as S\n"
            "real = S.transfer_instances\n"
            "n = [0]\n"
            "class Bomb:\n"
            "    def __del__(self):\n"
            "        os.kill(os.getpid(), signal.SIGINT)\n"
            "        sum(range(1000))  # the handler runs here, inside __del__\n"
            "def patched(*a, **k):\n"
            "    n[0] += 1\n"
            "    if n[0] == 5:\n"
            "        Bomb()\n"
            "    return real(*a, **k)\n"
            "S.transfer_instances = patched\n")
    p = subprocess.run(_wrapped(code, args), env=ENV, capture_output=True, text=True, timeout=60)
    assert p.returncode == 130, p.stderr
    assert "Traceback" not in p.stderr and "Exception ignored" not in p.stderr, p.stderr
    assert not out.exists() and len(_part_ids(out.with_name("pseudo.h5.parts"))) == 4
    r = invoke("labels", args)
    assert r.exit_code == 0 and _computed(r.output) == N_TRAIN - 4, r.output
    assert filecmp.cmp(out, tree / "ref" / "pseudo.h5", shallow=False)


def test_kill_while_renaming_final_store(tree, tmp_path):
    """SIGKILL with the final store complete under its temporary name, not yet renamed: the rerun
    removes the dead process's temporary file and writes the same bytes."""
    out = tmp_path / "out" / "pseudo.h5"
    args = _args("transfer", tree, out)
    code = ("import os, signal, sys\n"
            "import bestie_labels.core.fileio as F\n"
            "real = F.os.replace\n"
            "def replace(a, b):\n"
            "    if str(b) == sys.argv[-1]:\n"
            "        os.kill(os.getpid(), signal.SIGKILL)\n"
            "    return real(a, b)\n"
            "F.os.replace = replace\n")
    p = subprocess.run(_wrapped(code, args), env=ENV, capture_output=True, text=True, timeout=60)
    assert p.returncode == -signal.SIGKILL, p.stderr
    left = sorted(os.listdir(out.parent))
    assert not out.exists() and any(n.startswith(".pseudo.h5.") and ".tmp" in n for n in left), left
    r = invoke("labels", args)
    assert r.exit_code == 0 and "is up to date" in r.output, r.output  # finished from the parts
    assert filecmp.cmp(out, tree / "ref" / "pseudo.h5", shallow=False)
    assert sorted(os.listdir(out.parent)) == [out.name]


def test_kill_before_parts_removed(tree, tmp_path):
    """SIGKILL after the final rename, before the parts are removed: the rerun finds the store
    up to date and removes the leftover parts."""
    out = tmp_path / "out" / "cues.h5"
    args = _args("cues", tree, out)
    code = ("import os, signal, sys\n"
            "import bestie_labels.store.file as S\n"
            "def rmtree(*a, **k):\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n"
            "S.shutil.rmtree = rmtree\n")
    p = subprocess.run(_wrapped(code, args), env=ENV, capture_output=True, text=True, timeout=60)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert out.exists() and out.with_name("cues.h5.parts").is_dir()
    r = invoke("labels", args)
    assert r.exit_code == 0 and "is up to date" in r.output, r.output
    assert filecmp.cmp(out, tree / "ref" / "cues.h5", shallow=False)
    assert sorted(os.listdir(out.parent)) == [out.name]


def test_kill_while_renaming_export(tree, tmp_path):
    """export --format coco SIGKILLed with its JSON complete under the temporary name: no
    coco.json; the rerun writes it and removes the dead process's temporary file."""
    out = tmp_path / "out" / "coco.json"
    args = ["export", "--data", tree / "voc", "--split", "train", "--pseudo", tree / "ref" / "pseudo.h5",
            "--format", "coco", "--out", out]
    code = ("import os, signal, sys\n"
            "import bestie_labels.core.fileio as F\n"
            "real = F.os.replace\n"
            "def replace(a, b):\n"
            "    if str(b) == sys.argv[-1]:\n"
            "        os.kill(os.getpid(), signal.SIGKILL)\n"
            "    return real(a, b)\n"
            "F.os.replace = replace\n")
    p = subprocess.run(_wrapped(code, args), env=ENV, capture_output=True, text=True, timeout=60)
    assert p.returncode == -signal.SIGKILL, p.stderr
    # the temporary JSON, the dead run's lock and the registry naming coco.json as being written
    left = sorted(os.listdir(out.parent))
    assert not out.exists() and len(left) == 3 and {".bestie-outputs.json", ".coco.json.lock"} < set(left), left
    r = invoke("labels", args)
    assert r.exit_code == 0, r.output
    assert sorted(os.listdir(out.parent)) == [".bestie-outputs.json", "coco.json"]
    ref = tmp_path / "ref.json"
    assert invoke("labels", [*args[:-1], ref]).exit_code == 0
    assert filecmp.cmp(out, ref, shallow=False)


# ----------------------------------------------------------------------------------------
# disk full
# ----------------------------------------------------------------------------------------
def _enospc(*a, **k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", ["part", "final"])
def test_disk_full_keeps_previous_output(tree, tmp_path, monkeypatch, where):
    """An earlier complete pseudo.h5 exists; a --force rerun with other options hits ENOSPC while
    writing a part, or while renaming the final file: one line, exit 1, the earlier store intact,
    no temporary file; once there is space again the rerun resumes and finishes."""
    import bestie_labels.core.fileio as fileio
    import bestie_labels.store.file as store

    out = tmp_path / "out" / "pseudo.h5"
    args = _args("transfer", tree, out)
    assert invoke("labels", args).exit_code == 0
    before = snapshot(out.parent)
    new_args = [*args, "--min-area", "8", "--force"]
    if where == "part":
        real_file = store.h5py.File
        calls = {"n": 0}

        def file(path, mode="r", *a, **k):
            if mode == "w" and ".parts" in str(path):
                calls["n"] += 1
                if calls["n"] >= 3:  # two parts fit, then the disk is full
                    _enospc()
            return real_file(path, mode, *a, **k)

        monkeypatch.setattr(store.h5py, "File", file)
    else:
        real_replace = fileio.os.replace

        def replace(a, b):
            if Path(b) == out:
                _enospc()
            return real_replace(a, b)

        monkeypatch.setattr(fileio.os, "replace", replace)
    monkeypatch.setenv("BESTIE_PART_SIZE", "4")
    r = invoke("labels", new_args)
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output and r.output.strip().splitlines()[-1].startswith("Error:")
    assert "No space left on device" in r.output
    after = snapshot(out.parent)
    assert after[out.name] == before[out.name], "the earlier store was altered"
    leftovers = [n for n in after if n != out.name and not n.startswith("pseudo.h5.parts")]
    assert leftovers == [], leftovers
    monkeypatch.undo()
    r = invoke("labels", new_args)
    assert r.exit_code == 0, r.output
    if where == "part":
        assert _computed(r.output) == N_TRAIN - 8  # the two parts written before the error were kept
    else:
        assert "is up to date" in r.output  # every image was in the parts: only the final copy ran
    assert sorted(os.listdir(out.parent)) == [out.name]
    ref = tmp_path / "ref.h5"
    assert invoke("labels", [*_args("transfer", tree, ref), "--min-area", "8"]).exit_code == 0
    assert filecmp.cmp(out, ref, shallow=False)


# ----------------------------------------------------------------------------------------
# bestie-train fit
# ----------------------------------------------------------------------------------------
FIT_ITERS = 5


def _fit_args(base: Path, out: Path) -> list:
    return ["fit", "--data", base / "voc", "--split", "train", "--pseudo", base / "ref" / "pseudo.h5",
            "--wsss", base / "ref" / "wsss.h5", "--out", out, "--iters", str(FIT_ITERS), "--batch-size", "2",
            "--crop", "32", "--warmup", "2", "--val-split", "none", "--ckpt-every", "1", "--log-every", "1",
            "--seed", "3", "--workers", "1"]


def _losses(run: Path) -> list[float]:
    import json

    rows = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines() if s.strip()]
    return [r["total"] for r in rows if r.get("kind") == "train"]


@pytest.fixture(scope="module")
def fit_ref(tree):
    """An uninterrupted fit (in-process, one thread)."""
    with one_thread():
        r = invoke("train", _fit_args(tree, tree / "fit_ref"))
    assert r.exit_code == 0, r.output
    return tree / "fit_ref"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["KILL", "INT"])
def test_fit_killed_then_resumed_matches(tree, fit_ref, tmp_path, sig):
    """fit killed after a random number of iterations, rerun with --resume: same final weights
    (float tolerance) and the same loss curve as the uninterrupted run."""
    import torch

    rng = random.Random(f"fit-{int(sig)}")
    run = tmp_path / "run"
    args = _fit_args(tree, run)
    k, delay = rng.randint(1, FIT_ITERS - 2), rng.uniform(0.0, 0.3)
    p = subprocess.Popen([console_script("bestie-train"), *map(str, args)], env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = run / "metrics.jsonl"
    t0 = time.time()
    while p.poll() is None and time.time() - t0 < 120 and \
            (not log.is_file() or len(log.read_text().splitlines()) < k or not (run / "last.pt").is_file()):
        time.sleep(0.01)
    time.sleep(delay)
    assert p.poll() is None, "fit ended before it could be interrupted"
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    assert p.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 130), err
    assert "Traceback" not in err
    done = torch.load(run / "last.pt", map_location="cpu", weights_only=True)["iteration"]
    assert 1 <= done < FIT_ITERS
    with one_thread():
        r = invoke("train", [*args, "--resume"])
    assert r.exit_code == 0, r.output
    a = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    b = torch.load(fit_ref / "last.pt", map_location="cpu", weights_only=True)
    assert a["iteration"] == b["iteration"] == FIT_ITERS
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        x, y = a["model"][key], b["model"][key]
        if x.is_floating_point():
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5, msg=key)
        else:
            assert torch.equal(x, y), key
    np_a, np_b = _losses(run), _losses(fit_ref)
    assert len(np_a) == len(np_b) == FIT_ITERS
    assert np_a == pytest.approx(np_b, rel=1e-4, abs=1e-5)
    stray = [n for n in os.listdir(run) if ".tmp" in n]
    assert stray == [], stray


# ----------------------------------------------------------------------------------------
# repeatability (transfer with 1 and 2 workers, sharded and merged: tests/test_stages.py)
# ----------------------------------------------------------------------------------------
def test_cues_and_wsss_repeat_and_workers_identical(tree, tmp_path, monkeypatch):
    """Rerun from scratch in another folder, and with --workers 2: the same bytes (cues from
    points files, WSSS imported from PNGs); transfer too with --workers 2 and BESTIE_PART_SIZE=1."""
    from bestie_labels.datasets import open_dataset
    from bestie_labels.core.fileio import write_index_png

    ds = open_dataset(tree / "voc", "train")
    masks = tmp_path / "masks"
    masks.mkdir()
    for rec in ds.records:
        write_index_png(masks / f"{rec.image_id}.png", ds.load_gt(rec).semantic())
    ref = tree / "ref"
    for w in ("1", "2"):
        r = invoke("labels", [*_args("cues", tree, tmp_path / w / "cues.h5"), "--workers", w])
        assert r.exit_code == 0, r.output
        assert filecmp.cmp(tmp_path / w / "cues.h5", ref / "cues.h5", shallow=False)
        r = invoke("labels", ["wsss", "--data", tree / "voc", "--import", masks, "--workers", w,
                              "--out", tmp_path / w / "wsss.h5"])
        assert r.exit_code == 0, r.output
    assert filecmp.cmp(tmp_path / "1" / "wsss.h5", tmp_path / "2" / "wsss.h5", shallow=False)
    from bestie_labels.store.file import Store

    with Store(tmp_path / "2" / "wsss.h5") as a, Store(ref / "wsss.h5") as b:
        for i in ds.image_ids:  # imported PNGs of the GT == the GT store, image by image
            assert (a.read(i)["mask"] == b.read(i)["mask"]).all()
    monkeypatch.setenv("BESTIE_PART_SIZE", "1")
    r = invoke("labels", [*_args("transfer", tree, tmp_path / "p.h5"), "--workers", "2"])
    assert r.exit_code == 0, r.output
    assert filecmp.cmp(tmp_path / "p.h5", ref / "pseudo.h5", shallow=False)


@pytest.mark.slow
def test_pam_cues_repeat_identical(tree, pam_ref, tmp_path):
    """--method pam twice from the same checkpoint (and with --workers 2): the same bytes."""
    with one_thread():
        r = invoke("labels", [*_args("pam", tree, tmp_path / "c.h5"), "--workers", "2"])
    assert r.exit_code == 0, r.output
    assert filecmp.cmp(tmp_path / "c.h5", pam_ref, shallow=False)
    from bestie_labels.store.file import Store

    with Store(pam_ref) as s:
        assert sum(len(s.read(i)["points"]) for i in s.image_ids) > 0  # the cues are not all empty


# ----------------------------------------------------------------------------------------
# bestie-labels train-pam
# ----------------------------------------------------------------------------------------
def _pam_args(base: Path, out: Path) -> list:
    return ["train-pam", "--data", base / "voc", "--split", "train", "--backbone", "tiny", "--epochs", "3",
            "--batch-size", "8", "--input-size", "32", "--crop-size", "32", "--val-split", "none",
            "--seed", "5", "--out", out]


@pytest.mark.slow
def test_train_pam_killed_then_resumed_matches(tree, tmp_path):
    """train-pam SIGKILLed after its first epoch checkpoint, rerun with --resume: the weights of
    an uninterrupted run (float tolerance)."""
    import torch

    ref = tmp_path / "ref.pt"
    with one_thread():
        r = invoke("labels", _pam_args(tree, ref))
    assert r.exit_code == 0, r.output
    out = tmp_path / "pam.pt"
    args = _pam_args(tree, out)
    delay = random.Random("train-pam").uniform(0.0, 0.05)
    p = subprocess.Popen([console_script("bestie-labels"), *map(str, args)], env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while p.poll() is None and not out.exists() and time.time() - t0 < 120:
        time.sleep(0.005)
    time.sleep(delay)
    assert p.poll() is None, "train-pam ended before it could be killed"
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL
    epoch = torch.load(out, map_location="cpu", weights_only=True)["epoch"]
    assert 1 <= epoch < 3
    with one_thread():
        r = invoke("labels", [*args, "--resume"])
    assert r.exit_code == 0, r.output
    assert f"resuming {out} after epoch {epoch}" in r.output
    a = torch.load(out, map_location="cpu", weights_only=True)
    b = torch.load(ref, map_location="cpu", weights_only=True)
    assert a["epoch"] == b["epoch"] == 3
    for key, x in a["model"].items():
        y = b["model"][key]
        if x.is_floating_point():
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5, msg=key)
        else:
            assert torch.equal(x, y), key
    assert [h["loss"] for h in a["history"]] == pytest.approx([h["loss"] for h in b["history"]], rel=1e-4)
    assert sorted(os.listdir(tmp_path)) == ["pam.pt", "ref.pt"]


@pytest.mark.slow
def test_fit_disk_full_keeps_last_checkpoint(tree, fit_ref, tmp_path, monkeypatch):
    """ENOSPC while fit writes its third last.pt: one line, exit 1, the second last.pt intact,
    no temporary file; --resume then finishes with the uninterrupted weights."""
    import torch

    import bestie_train.checkpoint as ck

    run = tmp_path / "run"
    args = _fit_args(tree, run)
    real_save = torch.save
    calls = {"n": 0}

    def save(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            real_save(obj, f, *a, **k)  # half written, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(f))
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(ck.torch, "save", save)
    with one_thread():
        r = invoke("train", args)
    monkeypatch.undo()
    assert r.exit_code == 1, r.output
    assert "No space left on device" in r.output.strip().splitlines()[-1] and "Traceback" not in r.output
    assert torch.load(run / "last.pt", map_location="cpu", weights_only=True)["iteration"] == 2
    assert not [n for n in os.listdir(run) if ".tmp" in n]
    with one_thread():
        r = invoke("train", [*args, "--resume"])
    assert r.exit_code == 0, r.output
    a = torch.load(run / "last.pt", map_location="cpu", weights_only=True)["model"]
    b = torch.load(fit_ref / "last.pt", map_location="cpu", weights_only=True)["model"]
    for key in a:
        if a[key].is_floating_point():
            torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)
