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
    any other method builds its head itself (``build_head``).
    """
    spec = method.head_spec(geometry)
    front = method.build_front(geometry)
    if spec is None:
        return PoseModel(backbone, method.build_head(backbone.out_channels, num_keypoints, geometry), front)
    tails = make_tails(backbone, spec)
    widths = {SHARED: backbone.out_channels, **{k: t.out_channels for k, t in tails.items()}}
    return PoseModel(backbone, MapHead.from_spec(spec, widths, num_keypoints), front, tails)


__all__ = ["assemble_model", "can_split", "make_tails", "tail_state"]
