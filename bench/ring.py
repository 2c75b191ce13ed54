"""python -m bench.ring SIZE HOPS: the ring scenario in a fresh interpreter, so its memory is its own."""

from __future__ import annotations

import asyncio
import json
import logging
import sys

from bench.mesh_side import ring


def main() -> None:
    size, hops = int(sys.argv[1]), int(sys.argv[2])
    logging.disable(logging.CRITICAL)
    print(json.dumps(asyncio.run(ring(size, hops))))


if __name__ == "__main__":
    main()
