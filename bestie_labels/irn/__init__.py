"""The built-in WSSS: IRN's inter-pixel relations (Ahn, Cho and Kwak, CVPR 2019) on the PAM
classifier's own CAMs.

* :mod:`.seeds`: confident CAM seeds and their regions (class- or instance-wise);
* :mod:`.paths`, :mod:`.affinity`: pixel pairs within a radius, affinities from a boundary map,
  affinity labels from seeds;
* :mod:`.model`, :mod:`.loss`, :mod:`.data`, :mod:`.train`, :mod:`.checkpoint`: the boundary
  network on the frozen classifier trunk and its training (``train-irn``);
* :mod:`.random_walk`, :mod:`.infer`, :mod:`.wsss`: propagation of the CAMs within the boundaries,
  the instance cut, the ``wsss --method irn`` work function.
"""
