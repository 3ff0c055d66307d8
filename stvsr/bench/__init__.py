"""Benchmarks: parameters, FLOPs, latency and fidelity of every network on every backend present."""
