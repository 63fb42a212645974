"""lrpose-bench: low-resolution human pose estimation benchmark suite."""
__version__ = "0.1.0"
