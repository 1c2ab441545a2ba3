"""The stage engine (bestie_labels/stages/engine.py) with a toy stage: a frozen job and a pure
per-image function, written once, skipped when current, loaded only when there is work."""

from collections import Counter
from dataclasses import dataclass, replace

import numpy as np
import pytest

from bestie_labels.datasets.base import Dataset, Record
from bestie_labels.stages.engine import write_stage_store
from bestie_labels.store.file import Store

IDS = ["a", "b", "c", "d", "e"]


@dataclass(frozen=True)
class Toy:
    dataset: Dataset
    scale: int
    model: object = None


def toy_image(job: Toy, rec: Record):
    """Arrays depend on the record and the job; image ``c`` warns."""
    warn = Counter()
    if rec.image_id == "c":
        warn["no_instance"] += 1
    return {"x": np.full((2,), job.scale * (IDS.index(rec.image_id) + 1), np.int32),
            "m": np.full((2,), job.model, np.int32)}, warn


@pytest.fixture
def ds(tmp_path):
    recs = [Record(i, f"{i}.jpg", 4, 4, np.array([True, False])) for i in IDS]
    return Dataset(root=tmp_path, split="train", class_names=["c0", "c1"], records=recs)


def _run(ds, out, workers=1, load=None, scale=3):
    return write_stage_store("toy", "cues", out, Toy(ds, scale), toy_image, {"method": "toy", "scale": scale},
                     {"data": ds.fingerprint()}, workers=workers, load=load)


def test_writes_every_image_and_counts_stored_warnings(ds, tmp_path):
    loads = []
    s = _run(ds, tmp_path / "t.h5", load=lambda j: loads.append(1) or replace(j, model=7))
    assert (s.images, s.written, s.up_to_date, s.warnings) == (5, 5, False, {"no_instance": 1})
    assert loads == [1]
    with Store(tmp_path / "t.h5", stage="cues") as st:
        assert st.image_ids == IDS
        assert [int(st.read(i)["x"][0]) for i in IDS] == [3, 6, 9, 12, 15]
        assert int(st.read("e")["m"][1]) == 7  # the loaded job is the one the images see
    again = _run(ds, tmp_path / "t.h5", load=lambda j: loads.append(1) or j)
    assert again.up_to_date and again.written == 0 and again.warnings == {"no_instance": 1}
    assert loads == [1]  # nothing to do: nothing loaded


def test_workers_give_the_same_bytes(ds, tmp_path):
    one = _run(ds, tmp_path / "one.h5", load=lambda j: replace(j, model=1))
    two = write_stage_store("toy", "cues", tmp_path / "two.h5", Toy(ds, 3, 1), toy_image, {"method": "toy", "scale": 3},
                    {"data": ds.fingerprint()}, workers=2)
    assert one.written == two.written == 5
    assert (tmp_path / "one.h5").read_bytes() == (tmp_path / "two.h5").read_bytes()


def test_failed_load_leaves_nothing(ds, tmp_path):
    def boom(job):
        raise RuntimeError("no model")

    with pytest.raises(RuntimeError):
        _run(ds, tmp_path / "t.h5", load=boom)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_workers_load_the_job_once_and_leave_no_temporary(ds, tmp_path, monkeypatch):
    """The job (with its dataset) goes to a worker once, as a file the engine removes after."""
    import pickle

    from bestie_labels.stages import engine

    monkeypatch.setattr(engine.tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    s = write_stage_store("toy", "cues", tmp_path / "w.h5", Toy(ds, 2, 5), toy_image, {"method": "toy", "scale": 2},
                  {"data": ds.fingerprint()}, workers=2)
    assert s.written == 5 and list((tmp_path / "tmp").iterdir()) == []
    # in a worker: the pickle is read at the first chunk only
    job_path = tmp_path / "job.pkl"
    job_path.write_bytes(pickle.dumps(Toy(ds, 4, 9)))
    first = engine._in_worker(toy_image, str(job_path), [ds.record("a")])
    job_path.unlink()
    second = engine._in_worker(toy_image, str(job_path), [ds.record("b")])
    assert [r[0] for r in first + second] == ["a", "b"]
    assert second[0][1]["x"].data == np.full(2, 8, np.int32).tobytes()  # scale 4, image 2: the cached job
