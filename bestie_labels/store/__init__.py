"""Stores: the HDF5 file each per-image stage writes, and the only way to read or write one.

- :mod:`.file`: ``Store`` (read) and ``StoreWriter`` (parts, resume, final copy);
- :mod:`.codec`, :mod:`.h5io`: how one array is encoded, and the ``arrays`` layout on disk;
- :mod:`.header`: the header (stage, options, inputs) and how two headers differ;
- :mod:`.merge`: joining the shards of a sharded run;
- :mod:`.inputs`: a store as the input of another stage (stage names, checked opening,
  cached read handles), for the stages and the trainer alike;
- :mod:`.checks`: checked per-image reads of cues, WSSS and pseudo-label stores.
"""
