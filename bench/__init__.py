"""Kassa's benchmarks: each prints its figures and a ratio against a peer run alongside."""
