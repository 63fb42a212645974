"""Backbones (tiny CPU net, SimpleBaseline ResNet-50/101/152, HRNet-W32/W48), the pose model wrapper,
pretrained-weight loading and cost measurement."""

from lrpose_bench.models.cost import model_cost
from lrpose_bench.models.pose_model import PoseModel
from lrpose_bench.models.registry import BACKBONES, build_backbone, hrnet_branches
from lrpose_bench.models.weights import LoadReport, load_pretrained

__all__ = ["BACKBONES", "LoadReport", "PoseModel", "build_backbone", "hrnet_branches", "load_pretrained", "model_cost"]
