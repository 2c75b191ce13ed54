"""Benchmarks: the mesh measured against raw websockets, in the same run.

``python -m bench`` runs every scenario, the mesh and its raw-websockets twin
in alternation over several rounds, and prints medians (min-max) and the
ratio mesh/raw; ``--quick`` does the same with tiny counts in well under a
minute. See ``docs/benchmarks.md`` for the last full run.

``python -m bench --peers`` (``bench/peers.py``) goes across processes: the
circuit clock -> iopin -> buzzer as three processes, and 1 publisher to 100
subscribers in 4 processes, the mesh against raw websockets, Mosquitto (paho)
and Redis pub/sub; ``--uvloop`` adds the circuit on uvloop.

``python -m bench --scale`` (``bench/scale.py``) goes past one mesh: one
publisher to 1,000 subscribers through the mesh, Mosquitto and the ``mqtt``
bridge, and the bridge's throughput both ways; ``docs/scale.md`` reads it.
"""
