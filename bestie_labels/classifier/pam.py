"""Peak attention module (PAM, BESTIE section 3.3, Figure 4).

PAM takes an intermediate feature map ``X (B, K, H, W)`` and

1. applies a ReLU;
2. *selector*: takes each channel's global maximum ``S_p (B, K, 1, 1)``;
3. *controller*: a constant ``alpha`` (0.7, not learned), giving the boundary
   ``tau_p = alpha * S_p``;
4. *peak stimulator*: sets every value strictly below ``tau_p`` to zero.

It has no parameters and stays active at inference. With ``enabled=False`` it is only the ReLU,
which turns the classifier into a plain CAM network (``--no-pam``, ``--method cam``).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn


class PAM(nn.Module):
    """ReLU, then zero everything below ``alpha`` x the per-channel global max.

    ``forward(x (B,K,H,W) float) -> (B,K,H,W)``; gradients flow through the kept values only.
    """

    def __init__(self, alpha: float = 0.7, enabled: bool = True) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"PAM alpha must be in [0, 1], got {alpha}")
        self.alpha = float(alpha)
        self.enabled = bool(enabled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(x)
        if not self.enabled:
            return x
        peak = x.amax(dim=(2, 3), keepdim=True)  # selector
        boundary = peak * self.alpha  # controller (constant)
        return torch.where(x < boundary, torch.zeros((), dtype=x.dtype, device=x.device), x)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, enabled={self.enabled}"


def set_pam(model: nn.Module, enabled: bool) -> list[bool]:
    """Switch every :class:`PAM` in ``model`` on or off; returns the previous states in order."""
    prev = []
    for m in model.modules():
        if isinstance(m, PAM):
            prev.append(m.enabled)
            m.enabled = bool(enabled)
    return prev


@contextlib.contextmanager
def pam_disabled(model: nn.Module) -> Iterator[nn.Module]:
    """``with pam_disabled(model): ...`` runs ``model`` as a plain CAM network (PAM = ReLU)."""
    mods = [m for m in model.modules() if isinstance(m, PAM)]
    prev = [m.enabled for m in mods]
    for m in mods:
        m.enabled = False
    try:
        yield model
    finally:
        for m, p in zip(mods, prev):
            m.enabled = p
