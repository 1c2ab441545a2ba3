"""Training targets from pseudo instances.

:func:`make_targets` turns an instance map and its centers into the Panoptic-DeepLab
representation BESTIE trains on (section 3.2/3.3 of the paper):

* a class-wise center heatmap: a 2D Gaussian (sigma 6 by default) around each instance's
  center, rounded to the nearest pixel, truncated to a square kernel of ``6 sigma + 3`` pixels,
  overlapping Gaussians of one class combined by maximum (the Panoptic-DeepLab convention);
* an offset map ``(dy, dx)`` from every pixel of an instance to that instance's (unrounded)
  center, zero outside instances;
* the instance-aware guidance weight (section 3.4): 1 on labelled instance pixels, 0 elsewhere,
  so that objects missing from the pseudo labels are not taught as "no instance".

:func:`bestie_train.grouping.group_pixels` (Eq. 1) is the inverse: grouping the targets of an
instance map gives the instance map back.

CUDA tensors are handled in vectorised torch over whole maps with no host synchronisation;
CPU tensors (data-loader workers) in numpy over the instance pixels only, which is several
times faster there. Both give the same values.
"""

from __future__ import annotations

import functools

import numpy as np
import torch


def kernel_radius(sigma: float) -> int:
    """Half-width ``R`` of the truncated Gaussian kernel: ``round(3 sigma + 1)``.

    The kernel spans ``2R + 1`` pixels, ``6 sigma + 3`` for integer sigma (39 for sigma 6).
    """
    return int(round(3 * sigma + 1))


@functools.lru_cache(maxsize=16)
def _kernel(sigma: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Offsets ``(K,) int64`` ``-R..R`` and the ``(K, K) float32`` Gaussian, cached per device."""
    r = kernel_radius(sigma)
    d = torch.arange(-r, r + 1, dtype=torch.float32)
    g1 = torch.exp(-(d ** 2) / (2.0 * sigma ** 2))
    return d.long().to(device), (g1[:, None] * g1[None, :]).to(device)  # separable Gaussian


def _as_index(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(t, device=device).long()


def make_targets(instances: torch.Tensor, centers: torch.Tensor, classes: torch.Tensor,
                 num_classes: int, sigma: float = 6.0, offset_centers: torch.Tensor | None = None
                 ) -> dict[str, torch.Tensor]:
    """Center heatmap, offsets and guidance weight of one image.

    Args:
        instances: ``(H, W)`` integer tensor (int32 or int64 are used as they are, other
            integer types are converted): 0 = no instance, ``n + 1`` = instance n. Ids must
            lie in ``0..N`` (checked on CPU tensors only, to avoid a host synchronisation on
            the GPU).
        centers: ``(N, 2)`` float, ``(x, y)`` in pixels.
        classes: ``(N,)`` int64, 0-based.
        num_classes: C.
        sigma: standard deviation of the Gaussian, in pixels.
        offset_centers: ``(N, 2)`` float ``(x, y)`` the offsets point to (None: ``centers``).
            Point supervision in the official code: the Gaussian at the labelled point, the
            offsets to the instance's centroid.

    Returns:
        dict on ``instances.device``:
        ``center (C, H, W) float32`` with ``exp(-((u - x0)^2 + (v - y0)^2) / (2 sigma^2))``
        for ``|u - x0| <= R`` and ``|v - y0| <= R`` around each instance's rounded center
        ``(x0, y0)`` (``R = kernel_radius(sigma)``; round half to even, as Python's
        ``round``), maximum over the instances of a class; the part of a kernel outside the
        image is cut off, and an instance with no pixel in ``instances`` draws no Gaussian;
        ``offset (2, H, W) float32``: ``(cy - y, cx - x)`` on the pixels of each instance,
        ``(cx, cy)`` its offset center, 0 elsewhere; ``weight (H, W) float32``: 1 on instance pixels, 0 elsewhere.
    """
    instances = torch.as_tensor(instances)
    device = instances.device
    inst = instances if instances.dtype in (torch.int32, torch.int64) else instances.long()
    centers = torch.as_tensor(centers, device=device, dtype=torch.float32).reshape(-1, 2)
    classes = _as_index(classes, device).reshape(-1)
    if classes.shape[0] != centers.shape[0]:
        raise ValueError(f"{centers.shape[0]} centers but {classes.shape[0]} classes")
    targets = centers
    if offset_centers is not None:
        targets = torch.as_tensor(offset_centers, device=device, dtype=torch.float32).reshape(-1, 2)
        if targets.shape != centers.shape:
            raise ValueError(f"{targets.shape[0]} offset centers but {centers.shape[0]} centers")
    if inst.is_cuda:
        return _targets_dense(inst, centers, classes, num_classes, float(sigma), targets)
    return _targets_cpu(inst, centers, classes, num_classes, float(sigma), targets)


def _gaussian_cells(centers: np.ndarray, classes: np.ndarray, present: np.ndarray, height: int, width: int,
                    dl: np.ndarray, kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat ``(C*H*W)`` indices and values of every instance's truncated Gaussian (numpy).

    Kernel cells outside the image are redirected to a pixel of the image with value 0, which
    changes nothing under a maximum because the heatmap starts at 0.
    """
    x0 = np.round(centers[:, 0]).astype(np.int64)  # half to even, as torch.round and round()
    y0 = np.round(centers[:, 1]).astype(np.int64)
    yy = y0[:, None] + dl[None, :]  # (N, K)
    xx = x0[:, None] + dl[None, :]
    inside = ((yy >= 0) & (yy < height))[:, :, None] & ((xx >= 0) & (xx < width))[:, None, :]
    vals = kernel[None] * (inside & present[:, None, None])  # (N, K, K)
    cells = (classes[:, None, None] * (height * width)
             + np.clip(yy, 0, height - 1)[:, :, None] * width
             + np.clip(xx, 0, width - 1)[:, None, :])
    return cells.reshape(-1), vals.reshape(-1)


def _targets_cpu(inst: torch.Tensor, centers: torch.Tensor, classes: torch.Tensor, num_classes: int,
                 sigma: float, targets: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """:func:`make_targets` for CPU tensors, in numpy over the instance pixels only (``targets``:
    the offset centers, None for ``centers``).

    Outputs start as calloc'd zeros (numpy's ``zeros``: the kernel hands out zero pages
    lazily, so channels that stay empty cost no memset here), then only instance pixels and
    Gaussian windows are written. Gives the same values as :func:`_targets_dense`.
    """
    height, width = inst.shape[-2:]
    n = centers.shape[0]
    flat = inst.numpy().reshape(-1)
    idx = np.flatnonzero(flat)  # instance pixels, raster order
    ids = flat[idx]
    # One bincount gives the areas (instances with no pixel draw no Gaussian) and the largest id.
    area = np.bincount(ids, minlength=n + 1)
    if area.size > n + 1:
        raise ValueError(f"instance id {area.size - 1} but only {n} centers")
    c_np = centers.numpy()
    t_np = c_np if targets is None else targets.numpy()
    weight = np.zeros(height * width, np.float32)
    weight[idx] = 1.0
    offset = np.zeros((2, height * width), np.float32)
    py, px = np.divmod(idx, width)
    offset[0, idx] = t_np[ids - 1, 1] - py.astype(np.float32)
    offset[1, idx] = t_np[ids - 1, 0] - px.astype(np.float32)
    center = np.zeros(num_classes * height * width, np.float32)
    if n:
        dl, kernel = _kernel(sigma, torch.device("cpu"))
        cells, vals = _gaussian_cells(c_np, classes.numpy(), area[1:] > 0, height, width, dl.numpy(),
                                      kernel.numpy())
        np.maximum.at(center, cells, vals)
    return dict(center=torch.from_numpy(center.reshape(num_classes, height, width)),
                offset=torch.from_numpy(offset.reshape(2, height, width)),
                weight=torch.from_numpy(weight.reshape(height, width)))


def _targets_dense(inst: torch.Tensor, centers: torch.Tensor, classes: torch.Tensor, num_classes: int,
                   sigma: float, targets: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """:func:`make_targets` in torch over whole maps: any device, no host synchronisation
    (``targets``: the offset centers, None for ``centers``)."""
    targets = centers if targets is None else targets
    device = inst.device
    height, width = inst.shape[-2:]
    n = centers.shape[0]
    flat = inst.reshape(-1).long()
    weight = (inst > 0).float()
    # Instances with no pixel draw no Gaussian; a scatter-add of areas needs no host sync.
    area = torch.zeros(n + 1, device=device, dtype=torch.float32)
    area.scatter_add_(0, flat, weight.reshape(-1))

    # Offsets: gather each pixel's center through its id (entry 0, background, is 0), minus
    # the pixel's coordinate on instance pixels: ctr - coord * weight.
    zero = centers.new_zeros(1)
    ys = torch.arange(height, device=device, dtype=torch.float32).view(-1, 1)
    xs = torch.arange(width, device=device, dtype=torch.float32).view(1, -1)
    offset = torch.empty(2, height, width, device=device, dtype=torch.float32)
    for d, (col, coord) in enumerate(((1, ys), (0, xs))):
        table = torch.cat([zero, targets[:, col]])  # (N+1,) offset center y or x per id
        ctr = table.index_select(0, flat).view(height, width)
        torch.addcmul(ctr, coord, weight, value=-1, out=offset[d])

    center = torch.zeros(num_classes, height, width, device=device, dtype=torch.float32)
    if n:
        present = (area[1:] > 0).float()
        dl, kernel = _kernel(sigma, device)
        x0 = torch.round(centers[:, 0]).long()
        y0 = torch.round(centers[:, 1]).long()
        yy = y0[:, None] + dl[None, :]  # (N, K)
        xx = x0[:, None] + dl[None, :]
        inside = ((yy >= 0) & (yy < height))[:, :, None] & ((xx >= 0) & (xx < width))[:, None, :]
        vals = kernel[None] * inside * present[:, None, None]  # (N, K, K); 0 where cut off
        # Out-of-image kernel cells are redirected to a valid pixel with value 0: max with 0
        # changes nothing because the heatmap starts at 0 and Gaussians are positive.
        cells = (classes[:, None, None] * (height * width)
                 + yy.clamp(0, height - 1)[:, :, None] * width
                 + xx.clamp(0, width - 1)[:, None, :])
        center.view(-1).scatter_reduce_(0, cells.reshape(-1), vals.reshape(-1), reduce="amax",
                                        include_self=True)
    return dict(center=center, offset=offset, weight=weight)
