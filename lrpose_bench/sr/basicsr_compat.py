"""The one door to basicsr: every import of it in lrpose-bench goes through :func:`import_basicsr`.

basicsr 1.4.2 (the last release on PyPI) does ``from torchvision.transforms.functional_tensor import
rgb_to_grayscale``; torchvision >= 0.17 renamed that module to ``torchvision.transforms._functional_tensor``,
so a plain ``import basicsr`` fails there. pyproject installs ``basicsr-fixed`` (the same package with
that import fixed), but a user's environment may hold plain basicsr (e.g. pulled back in by realesrgan):
:func:`install_functional_tensor_alias` registers the old module name in ``sys.modules`` before basicsr is
imported, so both work. ``import basicsr`` takes seconds (it imports its whole training framework),
so it is only imported when an SR network is built.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

#: The module name basicsr 1.4.2 imports and torchvision >= 0.17 no longer has.
LEGACY_MODULE = "torchvision.transforms.functional_tensor"


def install_functional_tensor_alias() -> str:
    """Make ``import torchvision.transforms.functional_tensor`` work; returns the module it resolves to.

    Does nothing when torchvision still ships the module. Otherwise aliases it to the renamed private
    module ``_functional_tensor`` (same functions, same signatures), or to ``functional`` as a fallback.
    """
    if LEGACY_MODULE in sys.modules:
        return sys.modules[LEGACY_MODULE].__name__
    try:
        importlib.import_module(LEGACY_MODULE)
        return LEGACY_MODULE
    except ModuleNotFoundError:
        pass
    try:
        target = importlib.import_module("torchvision.transforms._functional_tensor")
    except ModuleNotFoundError:
        target = importlib.import_module("torchvision.transforms.functional")
    sys.modules[LEGACY_MODULE] = target
    from torchvision import transforms

    transforms.functional_tensor = target  # so that attribute access resolves too
    return target.__name__


def import_basicsr() -> ModuleType:
    """``import basicsr`` with the torchvision alias in place; a clear error if it is not installed."""
    install_functional_tensor_alias()
    try:
        return importlib.import_module("basicsr")
    except ModuleNotFoundError as exc:
        if exc.name != "basicsr":
            raise
        raise ModuleNotFoundError(
            "SR front ends need basicsr: pip install basicsr-fixed==1.4.2 (or basicsr==1.4.2)"
        ) from None


def basicsr_module(name: str) -> ModuleType:
    """A basicsr submodule (e.g. ``"archs.rrdbnet_arch"``), imported through :func:`import_basicsr`."""
    import_basicsr()
    return importlib.import_module(f"basicsr.{name}")


__all__ = ["LEGACY_MODULE", "install_functional_tensor_alias", "import_basicsr", "basicsr_module"]
