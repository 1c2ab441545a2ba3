"""The whole method as cached stages (:mod:`.plan`: one definition for Make and for Python), the
final table of a run (:mod:`.summary`) and the demo data it runs on by default
(:mod:`.demo_data`, :mod:`.demo_stage`)."""
