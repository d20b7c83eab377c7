"""Benchmarks: training and inference speed against the reference loop, and timing helpers."""
