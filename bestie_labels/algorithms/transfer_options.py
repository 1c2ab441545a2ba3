"""The options of the semantic knowledge transfer (:class:`TransferOptions`): the
``bestie-labels transfer`` command's options, the ``options`` a pseudo store records, and what
the trainer reads back from that store to run the same transfer on every training crop.

Each field's ``metadata`` holds its command-line help and range (read by :mod:`bestie_cli.options`,
which builds the ``bestie-labels transfer`` options from it): a default or a help text lives here only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Mapping

from ..core.constants import MIN_AREA
from ..core.errors import BestieError
from ..core.option_fields import option
from .components import CONNECTIVITIES, CONNECTIVITY

#: Where an instance's center is: the component's ``centroid`` (image-level cues) or the cue's
#: ``point`` (point supervision); :func:`~.knowledge_transfer.transfer_instances`' ``center``.
CENTER_MODES = ("centroid", "point")
#: ``--center``: one of :data:`CENTER_MODES`, or ``auto`` (resolved by the stage).
CENTER_CHOICES = ("auto", *CENTER_MODES)
#: A component with no cue of its class: ``drop`` it (the paper) or ``keep`` it as one instance.
CUELESS_MODES = ("drop", "keep")
#: A component with two or more cues of its class: ``drop`` it (the paper) or ``split`` it
#: between its cues (every pixel to the nearest cue).
MULTI_CUE_MODES = ("drop", "split")
#: What ``multi_cue="auto"`` becomes for cues from a classifier's maps (``split``: chosen on the
#: quality suite, see the README's *Quality* section) and for point labels (``drop``, the
#: official point-supervised rule; its measurement is left to point-labelled data).
AUTO_MODES = {"maps": {"multi_cue": "split"}, "points": {"multi_cue": "drop"}}


@dataclass(frozen=True)
class TransferOptions:
    """How pseudo instances are made from cues and WSSS masks (or taken from the GT).

    ``"auto"`` values are resolved by the stage (:meth:`resolved`) before they are recorded:
    ``center`` is the cue itself for points-file cues (point supervision), else the component's
    centroid; ``multi_cue`` follows :data:`AUTO_MODES`.
    """

    min_area: int = option(MIN_AREA, "Drop mask components smaller than this many pixels.", min=0,
                           show_default=True)
    connectivity: int = option(CONNECTIVITY, "Pixel connectivity of the mask components (4: edges, 8: "
                                             "edges and corners).", choices=CONNECTIVITIES, show_default=True)
    center: str = option("auto", "Instance center: auto = the point itself for point cues, else the "
                                 "component's centroid.", choices=CENTER_CHOICES, show_default=True)
    cueless: str = option("drop", "A mask component with no cue of its class: drop it (the paper) or keep "
                                  "it as one instance of score 0.", choices=CUELESS_MODES, show_default=True)
    multi_cue: str = option("auto", "A mask component with two or more cues of its class: drop it (the paper) "
                                    "or split it, every pixel to the nearest cue; auto = split for cues from a "
                                    "classifier, drop for point labels.", choices=("auto", *MULTI_CUE_MODES),
                            show_default=True)
    from_gt: bool = option(False, "Write the GT instances instead (upper bound, test oracle).")

    def __post_init__(self):
        if self.connectivity not in CONNECTIVITIES:
            raise BestieError(f"connectivity must be 4 or 8, got {self.connectivity}")
        if self.center not in CENTER_CHOICES:
            raise BestieError(f"center must be auto, centroid or point, got {self.center!r}")
        if self.cueless not in CUELESS_MODES:
            raise BestieError(f"cueless must be drop or keep, got {self.cueless!r}")
        if self.multi_cue not in ("auto", *MULTI_CUE_MODES):
            raise BestieError(f"multi_cue must be auto, drop or split, got {self.multi_cue!r}")
        if int(self.min_area) < 0:
            raise BestieError(f"min_area must be at least 0, got {self.min_area}")

    def resolved(self, point_cues: bool) -> TransferOptions:
        """``"auto"`` values made concrete for points-file cues (``point_cues``) or cues from a
        classifier's maps: ``center`` ``point`` for points-file cues when transferring, else
        ``centroid``; ``multi_cue`` from :data:`AUTO_MODES`; other values are kept."""
        auto = AUTO_MODES["points" if point_cues else "maps"]
        r = self
        if r.center == "auto":
            r = replace(r, center="point" if point_cues and not self.from_gt else "centroid")
        for key, mode in auto.items():
            if getattr(r, key) == "auto":
                r = replace(r, **{key: mode})
        return r

    def recorded(self) -> dict[str, Any]:
        """The store's ``options`` (a resolved ``center``); with ``from_gt`` only the center."""
        if self.from_gt:
            return {"from_gt": True, "center": self.center}
        return {"from_gt": False, **self.keywords()}

    def keywords(self) -> dict[str, Any]:
        """The keywords of :func:`~.knowledge_transfer.transfer_instances`."""
        return {"min_area": int(self.min_area), "connectivity": int(self.connectivity), "center": self.center,
                "cueless": self.cueless, "multi_cue": self.multi_cue}

    @classmethod
    def from_store(cls, options: Mapping[str, Any], path: str | os.PathLike) -> TransferOptions:
        """The options a pseudo store at ``path`` records (its header's ``options``), checked:
        ``store is damaged (no transfer options)`` when they are missing or malformed. A store
        written before ``cueless`` / ``multi_cue`` existed was made with ``drop`` / ``drop``."""
        try:
            if options.get("from_gt"):
                return cls(center=str(options["center"]), from_gt=True)
            return cls(min_area=int(options["min_area"]), connectivity=int(options["connectivity"]),
                       center=str(options["center"]), cueless=str(options.get("cueless", "drop")),
                       multi_cue=str(options.get("multi_cue", "drop")))
        except (KeyError, TypeError, ValueError, BestieError):
            raise BestieError("store is damaged (no transfer options)", path) from None
