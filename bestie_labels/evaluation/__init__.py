"""Instance-segmentation evaluation: VOC mAP (chainercv semantics) and COCO mask AP."""

from .coco_ap import coco_mask_ap, encode_masks
from .evaluate import evaluate_predictions, format_metrics
from .predictions import ImagePredictions, read_predictions
from .voc_ap import VOC_IOU_THRESHOLDS, voc_instance_ap

__all__ = ["coco_mask_ap", "encode_masks", "evaluate_predictions", "format_metrics",
           "ImagePredictions", "read_predictions", "VOC_IOU_THRESHOLDS", "voc_instance_ap"]
