"""Training and evaluation engine: profiles (:mod:`.config`), the training loop with AMP/DDP/stages/
checkpoints (:mod:`.trainer`, :mod:`.checkpoint`, :mod:`.distributed`), batched inference with the flip
test and COCO scoring (:mod:`.inference`), and one run end to end to a result record (:mod:`.runner`).

Submodules import torch; import them directly (``from lrpose_bench.engine.runner import run``).
"""
