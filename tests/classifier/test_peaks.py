"""Peak extraction and the CAM WSSS baseline on synthetic maps."""

import numpy as np
import pytest
import torch

from bestie_labels.classifier import cam_to_mask, extract_peaks


def _blob(h, w, x, y, s, a):
    yy, xx = np.mgrid[0:h, 0:w]
    return a * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * s * s))


def test_peaks_at_known_maxima():
    h, w = 60, 80
    maps = np.zeros((3, h, w), np.float32)
    maps[0] = _blob(h, w, 10, 12, 3, 1.0) + _blob(h, w, 50, 40, 3, 0.6)
    maps[1] = _blob(h, w, 70, 20, 3, 0.8) + _blob(h, w, 30, 30, 3, 0.05)  # second under min_conf
    maps[2] = _blob(h, w, 40, 30, 3, 1.0)  # class not in the label
    labels = np.array([True, True, False])
    pk = extract_peaks(maps, labels)
    assert pk.dtype == np.float32 and pk.shape == (3, 4)
    np.testing.assert_array_equal(pk[:, :3], [[10, 12, 0], [50, 40, 0], [70, 20, 1]])
    # conf = the 3x3 mean at the peak (zero padding)
    sm = torch.nn.functional.avg_pool2d(torch.from_numpy(maps)[None], 3, 1, 1)[0].numpy()
    np.testing.assert_allclose(pk[:, 3], [sm[0, 12, 10], sm[0, 40, 50], sm[1, 20, 70]], rtol=1e-6)
    # torch input gives the same; topk and min_conf are honoured
    np.testing.assert_array_equal(extract_peaks(torch.from_numpy(maps), labels), pk)
    assert len(extract_peaks(maps, labels, topk=1)) == 2
    assert len(extract_peaks(maps, labels, min_conf=0.7)) == 2
    assert len(extract_peaks(maps, labels, min_conf=0.01)) == 4


def test_close_maxima_merge_within_the_kernel():
    maps = np.zeros((1, 40, 40), np.float32)
    maps[0, 20, 10] = 1.0
    maps[0, 20, 16] = 0.9  # 6 px away: inside a 15x15 window, outside a 5x5 one
    assert len(extract_peaks(maps, [True], smooth=1)) == 1
    pk = extract_peaks(maps, [True], kernel=5, smooth=1)
    np.testing.assert_array_equal(pk, np.float32([[10, 20, 0, 1.0], [16, 20, 0, 0.9]]))


def test_no_label_no_peak():
    assert extract_peaks(np.ones((2, 8, 8)), [False, False]).shape == (0, 4)
    assert extract_peaks(np.zeros((2, 8, 8)), [True, True], min_conf=0).shape == (0, 4)
    with pytest.raises(ValueError):
        extract_peaks(np.ones((2, 8, 8)), [True])


def test_cam_to_mask():
    maps = np.zeros((3, 2, 4), np.float32)
    maps[0] = [[0.9, 0.5, 0.1, 0.0], [0.3, 0.25, 0.0, 0.0]]
    maps[1] = [[0.1, 0.6, 0.15, 0.0], [0.0, 0.3, 0.0, 0.0]]
    maps[2] = 1.0  # not in the label: never wins
    m = cam_to_mask(maps, [True, True, False], bg_threshold=0.2)
    np.testing.assert_array_equal(m, np.uint8([[1, 2, 0, 0], [1, 2, 0, 0]]))
    assert m.dtype == np.uint8
    np.testing.assert_array_equal(cam_to_mask(maps, [True, True, False], bg_threshold=0.55),
                                  np.uint8([[1, 2, 0, 0], [0, 0, 0, 0]]))
    assert not cam_to_mask(maps, [False] * 3).any()
