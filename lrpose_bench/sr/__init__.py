"""Super-resolution front ends for pose models (SR + heatmap); basicsr is imported only when a network is built.

* :mod:`.basicsr_compat` - the one door to basicsr (torchvision ``functional_tensor`` alias).
* :mod:`.archs`   - front ends by name: bicubic, srresnet, esrgan, edsr, spsr.
* :mod:`.weights` - official basicsr / ESRGAN ``.pth`` layouts in, basicsr layout out.
* :mod:`.front`   - :class:`~.front.SRFront`: normalised low-res crop -> normalised SR crop.
* :mod:`.train`   - ``lrpose sr train``: L1 training on low/high-res crop pairs from the dataset.
"""

from lrpose_bench.sr.archs import SR_MODELS, build_sr, sr_arch
from lrpose_bench.sr.front import SRFront, build_sr_front, front_cost
from lrpose_bench.sr.weights import load_sr_network, save_sr_weights

__all__ = ["SR_MODELS", "build_sr", "sr_arch", "SRFront", "build_sr_front", "front_cost", "load_sr_network", "save_sr_weights"]
