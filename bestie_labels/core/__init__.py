"""The shared core of ``bestie_labels`` and ``bestie_train`` (the lowest layer: it imports no
other package of the project).

- :mod:`.errors`: ``BestieError`` and the one-line error classes;
- :mod:`.constants`: the void label, ImageNet mean / std, the largest image side;
- :mod:`.fileio`, :mod:`.orientation`: atomic writes, JSON, image reading, EXIF orientation;
- :mod:`.outputs`: what a command may write (own outputs only, never its inputs, locks);
- :mod:`.interrupt`: Ctrl-C handling shared by the stages and the trainers;
- :mod:`.safe_load`: the only ``torch.load`` (``weights_only=True``);
- :mod:`.training`, :mod:`.option_fields`, :mod:`.torch_threads`: what the trainers share;
- :mod:`.rle`: every COCO RLE encode / decode (datasets, evaluation, writers and the trainer);
- :mod:`.version`: the version recorded in stores and exports.
"""
