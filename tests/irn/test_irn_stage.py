"""train-irn and wsss --method irn end to end at a tiny size (3 demo images of 64x64)."""

import numpy as np
import pytest
import torch

from bestie_labels.datasets import open_dataset
from bestie_labels.core.errors import BestieError
from bestie_labels.stages import run_report, run_wsss
from bestie_labels.store.file import Store
from checkpoint_helpers import save_tiny_classifier

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.slow
def test_train_irn_resume_wsss_and_miou(demo_root, tmp_path):
    from bestie_labels.irn.checkpoint import load_irn
    from bestie_labels.irn.infer import IrnParams, irn_class_mask
    from bestie_labels.irn.train import train_irn

    ds = open_dataset(demo_root, split="val")  # 3 images
    pam = save_tiny_classifier(tmp_path / "pam.pt", ds.class_names, alpha=0.4)
    kw = dict(batch_size=2, crop_size=64, radius=3, seed=1, log=lambda s: None)
    r2 = train_irn(ds, pam, tmp_path / "two.pt", epochs=2, **kw)
    assert [h["epoch"] for h in r2["history"]] == [1, 2]
    train_irn(ds, pam, tmp_path / "one.pt", epochs=1, **kw)
    r = train_irn(ds, pam, tmp_path / "one.pt", epochs=2, resume=True, **kw)  # continue to epoch 2
    a, b = torch.load(tmp_path / "one.pt", weights_only=False), torch.load(tmp_path / "two.pt", weights_only=False)
    assert r["epoch"] == 2 and a["head"].keys() == b["head"].keys()
    for k in a["head"]:
        torch.testing.assert_close(a["head"][k], b["head"][k])
    with pytest.raises(BestieError, match="other options"):  # another threshold is another run
        train_irn(ds, pam, tmp_path / "one.pt", epochs=2, resume=True, fg_threshold=0.6, **kw)

    # wsss with only a checkpoint is IRN; the store equals the library call
    s = run_wsss(ds, tmp_path / "wsss.h5", checkpoint=tmp_path / "two.pt")
    assert s.written == 3
    classifier, net, _ = load_irn(tmp_path / "two.pt")
    rec = ds.records[0]
    want, _ = irn_class_mask(classifier, net, ds.load_image(rec), rec.labels, IrnParams())
    with Store(tmp_path / "wsss.h5", stage="wsss") as w:
        assert w.options["method"] == "irn" and w.options["radius"] == 5
        np.testing.assert_array_equal(w.read(rec.image_id)["mask"], want)
    # multi-scale CAMs: recorded, and the store equals the library call with those scales
    run_wsss(ds, tmp_path / "ms.h5", checkpoint=tmp_path / "two.pt", irn={"cam_scales": "1,0.5"})
    want_ms, _ = irn_class_mask(classifier, net, ds.load_image(rec), rec.labels, IrnParams(cam_scales=(1.0, 0.5)))
    with Store(tmp_path / "ms.h5", stage="wsss") as w:
        assert w.options["cam_scales"] == [1.0, 0.5]
        np.testing.assert_array_equal(w.read(rec.image_id)["mask"], want_ms)
    with pytest.raises(BestieError, match="--cam-scales"):
        run_wsss(ds, tmp_path / "bad_scales.h5", checkpoint=tmp_path / "two.pt", irn={"cam_scales": "1,-2"})
    # report --wsss alone: mIoU over background + the 4 demo classes
    m = run_report(ds, None, wsss_path=tmp_path / "wsss.h5", out_json=tmp_path / "m.json")["wsss"]
    assert list(m["per_class"]) == ["background", *ds.class_names] and m["method"] == "irn"
    assert 0 <= m["mIoU"] <= 100 and (tmp_path / "m.json").is_file()
    # a PAM checkpoint where an IRN one is expected: one line saying what to do
    with pytest.raises(BestieError, match="train-irn"):
        run_wsss(ds, tmp_path / "bad.h5", checkpoint=pam)
    assert not (tmp_path / "bad.h5").exists() and not (tmp_path / "bad.h5.parts").exists()
