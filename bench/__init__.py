"""Benchmarks: the mesh measured against raw websockets, in the same run.

``python -m bench`` runs every scenario, the mesh and its raw-websockets twin
in alternation over several rounds, and prints medians (min-max) and the
ratio mesh/raw; ``--quick`` does the same with tiny counts in well under a
minute. See ``docs/benchmarks.md`` for the last full run.
"""
