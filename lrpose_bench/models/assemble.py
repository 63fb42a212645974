"""Assemble a :class:`PoseModel` from a backbone and a method: the method's head, front end and, for a
:class:`~lrpose_bench.heads.MapHeadSpec` with decoupled outputs, private copies of the backbone's last
stage. The core never asks which method it is: everything comes from the method contract.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from lrpose_bench.heads import SHARED, MapHead, MapHeadSpec
from lrpose_bench.models.pose_model import PoseModel

if TYPE_CHECKING:
    from lrpose_bench.method import Geometry, PoseMethod


def can_split(backbone: nn.Module) -> bool:
    """Whether ``backbone`` can give its last stage to decoupled heads (trunk / tail / copy hooks)."""
    return all(callable(getattr(backbone, hook, None)) for hook in ("forward_trunk", "forward_tail", "make_tail"))


def tail_state(backbone: nn.Module) -> dict:
    """The state of the backbone's own last stage, keyed as in a copy made by ``make_tail``."""
    prefixes = tuple(f"{name}." for name in getattr(backbone, "tail_modules", ()))
    return {k: v for k, v in backbone.state_dict().items() if k.startswith(prefixes)}


def _has_trunk_output(backbone: "nn.Module | type") -> bool:
    return can_split(backbone) and callable(getattr(backbone, "trunk_output", None))


def _no_trunk_output(name: str, method: str) -> ValueError:
    return ValueError(
        f"backbone {name!r} has no single deepest trunk map for {method}'s pooled head (HRNet's branches run "
        "side by side to the end); use --backbone tiny or resnet50/101/152 (MMPose's regression heads: ResNet)"
    )


def check_backbone_for(method: "PoseMethod", backbone: str) -> None:
    """Raise the error :func:`assemble_model` would raise for ``method`` on backbone ``backbone``, without
    building anything (a method whose head reads the trunk needs a backbone with ``trunk_output``)."""
    from lrpose_bench.models.registry import backbone_class

    if method.head_input == "trunk" and not _has_trunk_output(backbone_class(backbone)):
        raise _no_trunk_output(backbone, method.name)


def drop_tail(backbone: nn.Module, why: str) -> nn.Module:
    """Remove ``backbone``'s last stage (its upsampling part) for a head that reads the trunk's deepest map.

    Raises ``ValueError`` naming the backbone when it has no single deepest trunk map (``trunk_output``),
    as HRNet, whose branches run side by side to the end. ``why`` names the method in that message.
    """
    if not _has_trunk_output(backbone):
        raise _no_trunk_output(getattr(backbone, "name", type(backbone).__name__), why)
    for module in backbone.tail_modules:
        setattr(backbone, module, None)
    backbone.out_channels = backbone.trunk_channels
    return backbone


def make_tails(backbone: nn.Module, spec: MapHeadSpec) -> dict[str, nn.Module]:
    """One private copy of ``backbone``'s last stage per decoupled output of ``spec``.

    Raises ``ValueError`` naming the backbone when it cannot split, or when ``tail_init="copy"`` meets a
    copy whose shapes differ from the shared stage (HRNet-W48's wider released offset stage).
    """
    if not spec.decoupled:
        return {}
    name = getattr(backbone, "name", type(backbone).__name__)
    if not can_split(backbone):
        raise ValueError(
            f"backbone {name!r} cannot split off its last stage for decoupled outputs "
            f"({', '.join(spec.decoupled)}): it has no forward_trunk/forward_tail/make_tail; "
            "use --set network=shared"
        )
    tails: dict[str, nn.Module] = {}
    for output in spec.decoupled:
        tail = backbone.make_tail()
        if spec.tail_init == "copy":
            state = tail_state(backbone)
            own = tail.state_dict()
            mismatched = sorted(k for k in own if k not in state or state[k].shape != own[k].shape)
            if mismatched:
                raise ValueError(
                    f"backbone {name!r}: tail_init=copy needs the decoupled stage to match the shared one, but "
                    f"{len(mismatched)} tensors differ (first: {mismatched[0]}); use tail_init=fresh"
                )
            tail.load_state_dict(state)
        tails[output] = tail
    return tails


def assemble_model(method: "PoseMethod", geometry: "Geometry", backbone: nn.Module, num_keypoints: int) -> PoseModel:
    """``PoseModel(backbone, head, front, tails)`` for ``method`` at ``geometry``.

    A method with a :class:`MapHeadSpec` gets a :class:`MapHead` (decoupled outputs on their own tails);
    any other method builds its head itself (``build_head``), on the stride-4 features or, with
    ``head_input = "trunk"``, on the trunk's deepest map (the backbone's last stage removed).
    """
    spec = method.head_spec(geometry)
    front = method.build_front(geometry)
    if spec is None:
        trunk_only = method.head_input == "trunk"
        if trunk_only:
            drop_tail(backbone, method.name)
        elif method.head_input != "features":
            raise ValueError(f"method {method.name!r}: head_input={method.head_input!r} is not 'features' or 'trunk'")
        head = method.build_head(backbone.out_channels, num_keypoints, geometry)
        return PoseModel(backbone, head, front, trunk_only=trunk_only)
    tails = make_tails(backbone, spec)
    widths = {SHARED: backbone.out_channels, **{k: t.out_channels for k, t in tails.items()}}
    return PoseModel(backbone, MapHead.from_spec(spec, widths, num_keypoints), front, tails)


__all__ = ["assemble_model", "can_split", "check_backbone_for", "drop_tail", "make_tails", "tail_state"]
