"""Pure algorithms over numpy arrays (no I/O): semantic knowledge transfer
(:mod:`.knowledge_transfer`) and its options (:mod:`.transfer_options`), the connected
components of each class (:mod:`.components`), matching pseudo labels to GT instances
(:mod:`.matching`) and the check of a WSSS class mask against the image-level label
(:mod:`.class_mask`)."""
