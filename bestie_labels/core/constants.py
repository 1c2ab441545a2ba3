"""Numbers the whole project agrees on, each defined once."""

from __future__ import annotations

#: Void / ignore value of class and instance masks (VOC ``SegmentationClass`` and
#: ``SegmentationObject``, WSSS masks, training targets): never a class, never an instance,
#: ignored by the losses and the evaluation.
VOID = 255

#: Smallest region kept, in pixels: a WSSS component the transfer makes an instance of (its
#: ``min_area``, on full images and on training crops alike) and a predicted class region (the
#: official ``MINIMUM_MASK_SIZE``).
MIN_AREA = 50

#: ImageNet mean and standard deviation of the RGB channels in [0, 1], the normalisation every
#: backbone (and its pretrained weights) expects.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Largest image side accepted from dataset metadata (VOC XML, COCO JSON): the PNG / JPEG limit.
MAX_SIDE = 65535
