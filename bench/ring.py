"""python -m bench.ring SIZE HOPS: the ring scenario in a fresh interpreter, so its memory is its own."""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import sys

from bench.mesh_side import ring

#: Files a ring of SIZE nodes holds open: per node a listening socket and both ends of one link, and some spare.
FILES_PER_NODE = 3
SPARE_FILES = 1_000


def raise_file_limit(size: int) -> str | None:
    """Let this process open the files a ring of ``size`` nodes needs; what it could not do, or None.

    The soft limit goes up to what is needed; past the hard limit, only a process allowed to
    (root, CAP_SYS_RESOURCE) may raise that too.
    """
    needed = FILES_PER_NODE * size + SPARE_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft >= needed:
        return None
    if hard == resource.RLIM_INFINITY or hard >= needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        return None
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
    except (ValueError, OSError) as exc:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return f"open files limited to {hard:,} (hard limit; {needed:,} wanted: {exc})"
    return None


def main() -> None:
    size, hops = int(sys.argv[1]), int(sys.argv[2])
    logging.disable(logging.CRITICAL)
    limited = raise_file_limit(size)
    if limited:
        print(f"bench.ring: {limited}", file=sys.stderr)
    figures: dict[str, object] = dict(asyncio.run(ring(size, hops, links=not limited)))
    if limited:
        figures["note"] = f"{limited}: start-up and memory without links"
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
