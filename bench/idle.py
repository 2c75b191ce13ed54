"""python -m bench.idle LINKS SECONDS: what idle links cost, in a fresh interpreter.

LINKS sender nodes each keep one link (opened by a first message) to one of LINKS receiver
nodes, all in this process; then nothing is sent for SECONDS. Prints the CPU this process
used meanwhile, as a percentage of one core: the keepalive of twice LINKS connection ends,
and the event loop's own timers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time

from bench.mesh_side import Sink, stopped
from bench.ring import raise_file_limit
from mesh.grid import build_grid
from nodes.circuit import building
from nodes.runtime import Node, open_together


async def idle(links: int, seconds: float) -> dict[str, float]:
    """``links`` links, open and idle for ``seconds``: CPU % of one core meanwhile."""
    with building():
        grid = build_grid(
            {
                **{f"rx{i}": {"sketch": "sink", "port": 0} for i in range(links)},
                **{f"tx{i}": {"sketch": "sink"} for i in range(links)},
            },
            [f"tx{i} -> rx{i}" for i in range(links)],
        )
        nodes = {name: Node(Sink, name, grid) for name in grid.nodes}
        await open_together(nodes)
    try:
        await asyncio.gather(*(nodes[f"tx{i}"].sketch.stream(f"rx{i}", "hello") for i in range(links)))
        await asyncio.sleep(min(seconds, 3.0))  # settle: the last acks, the first keepalive round
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return {"links": links, "seconds": wall, "cpu_percent": 100 * cpu / wall}
    finally:
        await stopped(nodes)


def main() -> None:
    links, seconds = int(sys.argv[1]), float(sys.argv[2])
    logging.disable(logging.CRITICAL)
    limited = raise_file_limit(links)
    if limited:
        print(f"bench.idle: {limited}", file=sys.stderr)
    print(json.dumps(asyncio.run(idle(links, seconds))))


if __name__ == "__main__":
    main()
