"""``wsss --method irn``: its options (checked) and what its store records (used by ``stages.wsss``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ..core.errors import BestieError
from .infer import IrnParams


def irn_params(bg_score: float | None = None, radius: int | None = None, beta: float | None = None,
               exp_times: int | None = None, cut_threshold: float | None = None,
               peak_split: bool | None = None, cam_scales=None) -> IrnParams:
    """:class:`IrnParams` with the given values, defaults for None; bad values are a BestieError.
    ``cam_scales``: numbers or their comma-separated text (``"1,0.5,1.5,2"``)."""
    from ..classifier.maps import check_scales

    d = IrnParams()
    try:
        scales = d.cam_scales if cam_scales is None else check_scales(cam_scales)
    except ValueError as e:
        raise BestieError(f"--cam-scales: {e}") from None
    p = IrnParams(radius=d.radius if radius is None else int(radius),
                  beta=d.beta if beta is None else float(beta),
                  exp_times=d.exp_times if exp_times is None else int(exp_times),
                  bg_score=d.bg_score if bg_score is None else float(bg_score),
                  cut_threshold=d.cut_threshold if cut_threshold is None else float(cut_threshold),
                  min_part=d.min_part, peak_split=d.peak_split if peak_split is None else bool(peak_split),
                  cam_scales=scales)
    if p.radius < 2 or p.beta <= 0 or not 0 <= p.exp_times <= 12 or not 0 < p.cut_threshold <= 1:
        raise BestieError("IRN options: radius >= 2, beta > 0, 0 <= exp-times <= 12, 0 < cut-threshold <= 1")
    return p


def irn_options(params: IrnParams) -> dict[str, Any]:
    """The options a wsss store made by IRN records."""
    return {"method": "irn", **asdict(params), "cam_scales": [float(s) for s in params.cam_scales]}
