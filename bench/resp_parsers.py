"""python -m bench.resp_parsers: parsing Redis requests, hiredis's Reader (redis-py's parser) against ours.

Why the node parses requests itself (mesh/resp/parse.py, docs/redis.md) rests partly on this
figure: hiredis is faster per command, and a request is parsed once while its publication is
delivered to every subscriber. It feeds the same pipelined PUBLISH requests to both, cut into
reads of 64 KiB, 1 KiB and one request, best of 5; inline requests, ours only (hiredis cannot
read them). Needs hiredis (pip install 'arduino-mesh[bench]').
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mesh.resp.parse import RequestParser

COMMANDS = 100_000
REQUEST = b"*3\r\n$7\r\nPUBLISH\r\n$12\r\nbuzzer/sound\r\n$14\r\nbuzz buzz buzz\r\n"


def best(run: Callable[[list[bytes]], None], chunks: list[bytes], commands: int) -> float:
    """µs per command, the best of 5 runs."""
    times = []
    for _ in range(5):
        start = time.perf_counter()
        run(chunks)
        times.append(time.perf_counter() - start)
    return min(times) / commands * 1e6


def ours(chunks: list[bytes]) -> None:
    parser = RequestParser()
    for chunk in chunks:
        parser.feed(chunk)
        while parser.next() is not None:
            pass


def main() -> None:
    import hiredis

    def theirs(chunks: list[bytes]) -> None:
        reader = hiredis.Reader()
        for chunk in chunks:
            reader.feed(chunk)
            while reader.gets() is not False:
                pass

    data = REQUEST * COMMANDS
    print(f"{COMMANDS:,} pipelined PUBLISH requests ({len(REQUEST)} B each), µs per command, best of 5:")
    for size in (65536, 1024, len(REQUEST)):
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        h, o = best(theirs, chunks, COMMANDS), best(ours, chunks, COMMANDS)
        print(f"  reads of {size:6,} B: hiredis {h:.2f}, ours {o:.2f} ({o / h:.0f}x)")
    inline = b"PUBLISH buzzer/sound buzz\r\n" * COMMANDS
    chunks = [inline[i : i + 65536] for i in range(0, len(inline), 65536)]
    print(f"  inline, reads of 64 KiB (hiredis cannot read them): ours {best(ours, chunks, COMMANDS):.2f}")


if __name__ == "__main__":
    main()
