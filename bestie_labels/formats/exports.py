"""The export formats of ``bestie-labels export --format`` and the writer of each."""

from .coco_json import export_coco
from .label_trees import export_bestie_txt, export_voc

#: ``bestie-labels export --format`` values, in the order the help lists them.
EXPORT_FORMATS = ("coco", "voc", "bestie-txt")


def exporter(fmt: str):
    """The writer ``(dataset, store, out) -> {"images", "instances"}`` of export format ``fmt``
    (one of :data:`EXPORT_FORMATS`); KeyError for another name."""
    return {"coco": export_coco, "voc": export_voc, "bestie-txt": export_bestie_txt}[fmt]
