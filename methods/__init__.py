"""Pose methods, one file each; see lrpose_bench.method for the contract and registry."""
