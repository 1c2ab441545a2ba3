"""File formats read and written outside the stores: the official BESTIE point files
(:mod:`.points`) and PASCAL VOC2012 trees (:mod:`.voc_writer`)."""
