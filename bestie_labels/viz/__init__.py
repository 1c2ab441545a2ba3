"""Drawing: the one home of colours, legends, class-name text and the panels every figure uses
(``report --overlays``, ``bestie-train predict/evaluate --vis`` and the HTML reports).

- :mod:`.palette`: class colours (the VOC palette), instance colours, TP / FP / missed colours,
  legend entries;
- :mod:`.drawing`: RGBA layers (cues, class mask, instances with class names and TP / FP
  outlines, GT with missed instances marked), their composition, the side-by-side panels and
  PNG / JPEG encoding;
- :mod:`.html`: the static HTML reports (summary, gallery, image pages).
"""
