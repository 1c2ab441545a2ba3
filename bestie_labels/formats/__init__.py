"""File formats read and written outside the stores: the official BESTIE point files
(:mod:`.points`), PASCAL VOC2012 trees (:mod:`.voc_writer`), and the exports of a pseudo store
(:mod:`.exports`): a COCO instances JSON (:mod:`.coco_json`), VOC PNG and BESTIE text trees
(:mod:`.label_trees`)."""
