"""python -m bench [--peers [--uvloop] | --scale] [--quick] [--rounds N] [--subscribers N] [--json PATH] [--docs PATH]"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from bench import headline, mesh_side, peers, raw, scale, up
from bench import simulate as simulation
from bench.report import (
    MQTT_PACKAGES,
    PACKAGES,
    PEER_PACKAGES,
    environment,
    format_figure,
    markdown,
    peers_table,
    scale_table,
    table,
)
from bench.scale import spread

ROOT = Path(__file__).resolve().parent.parent

FULL = {
    "stream": 20_000,
    "latency": 2_000,
    "circuit": 5_000,
    "targets": 500,
    "fanout": {1: 20_000, 10: 5_000, 100: 1_000},
    "naive": 1_000,
    "reuse": 20_000,
    "rings": {1: 20_000, 10: 20_000, 100: 20_000, 1000: 20_000, 10_000: 20_000},
    "idle": {1000: 10.0},  # links: seconds
    "up": [1000, 2500, 5000, 10_000],  # nodes started by `arduino-mesh up` itself
    "up_idle": {1000: 10.0},  # nodes, each subscribed to the next, idle under `arduino-mesh up`: seconds
    "processes": 50,
    "simulate": {"day": "24h", "chains": ("1h", 25)},  # through `arduino-mesh simulate` itself
    "rounds": 5,
}
QUICK = {
    "stream": 300,
    "latency": 50,
    "circuit": 50,
    "targets": 20,
    "fanout": {1: 300, 10: 50, 100: 5},
    "naive": 30,
    "reuse": 300,
    "rings": {1: 200, 10: 200, 100: 200},
    "idle": {20: 0.5},
    "up": [50, 100],
    "up_idle": {50: 0.5},
    "processes": 3,
    "simulate": {"day": "2m", "chains": ("1m", 3)},
    "rounds": 1,
}


#: Ticks each system takes in turn when latencies are measured side by side (:func:`interleaved`).
BLOCK = 50


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def alternate(rounds: int, pairs: dict[str, Callable[[], Awaitable[Any]]]) -> dict[str, list[Any]]:
    """Run each measurement once per round, in turn, so that drift on the machine hits all alike."""
    results: dict[str, list[Any]] = {name: [] for name in pairs}
    for _ in range(rounds):
        for name, measure in pairs.items():
            results[name].append(await measure())
    return results


async def interleaved(
    count: int, block: int, systems: dict[str, Callable[[], AbstractAsyncContextManager[Callable[[str], Awaitable]]]]
) -> dict[str, list[float]]:
    """``count`` calls to each system, all open at once, ``block`` calls at a time in turn. Seconds per call.

    Drift on this machine lasts longer than a block (a few milliseconds), so it hits every system alike;
    with whole runs in turn (:func:`alternate`), one system's run could fall on a slow second and the
    other's on a quick one, and a latency's ratio swung from 0.8 to 1.6 between runs.
    """
    async with contextlib.AsyncExitStack() as stack:
        calls = {name: await stack.enter_async_context(open_system()) for name, open_system in systems.items()}
        got: dict[str, list[float]] = {name: [] for name in systems}
        for first in range(0, count, block):
            for name, call in calls.items():
                for i in range(first, min(count, first + block)):
                    got[name].append(await mesh_side.timed(call, f"tick {i}"))
        return got


async def run(sizes: dict[str, Any], say: Callable[[str], None]) -> list[dict[str, Any]]:
    rounds = sizes["rounds"]
    rows: list[dict[str, Any]] = []

    def row(
        scenario: str,
        unit: str,
        mesh: list[float],
        twin: list[float],
        twin_name: str,
        target: str = "",
        higher_is_better: bool = True,
    ) -> None:
        m, t = spread(mesh), spread(twin)
        ratio = m["median"] / t["median"]
        rows.append(
            {
                "scenario": scenario,
                "unit": unit,
                "mesh": m,
                "raw": t,
                "raw_twin": twin_name,
                "ratio": ratio,
                "target": target,
                "higher_is_better": higher_is_better,
            }
        )
        say(
            f"  {scenario}: mesh {format_figure(m['median'])} {unit}, {twin_name} {format_figure(t['median'])}, ratio {ratio:.2f}"
        )

    n = sizes["stream"]
    say(f"stream, one hop: {n:,} messages, {rounds} rounds")
    got = await alternate(
        rounds,
        {
            "mesh": lambda: mesh_side.stream_one_hop(n),
            "pipelined": lambda: raw.pipelined(n),
            "request": lambda: raw.request_reply(n),
        },
    )
    row("stream, one hop (delivery guarantee)", "msg/s", got["mesh"], got["pipelined"], "raw pipelined", ">= 0.7")
    row("stream, one hop (delivery guarantee)", "msg/s", got["mesh"], got["request"], "raw send-then-reply")

    n = sizes["latency"]
    say(f"tick to buzz: {n:,} ticks, 3 bits each, {rounds} rounds")
    ticks = {"mesh": lambda: mesh_side.ticking(3), "raw": lambda: raw.relaying(3)}
    got = {"mesh": [], "raw": []}
    for _ in range(rounds):
        for name, latencies in (await interleaved(n, BLOCK, ticks)).items():
            got[name].append(latencies)
    for q, label, target in ((0.5, "p50", "<= 1.1"), (0.99, "p99", "")):
        mesh_q = [percentile(run_, q) * 1e6 for run_ in got["mesh"]]
        raw_q = [percentile(run_, q) * 1e6 for run_ in got["raw"]]
        row(f"tick to buzz latency {label}", "µs", mesh_q, raw_q, "raw two-hop relay", target, higher_is_better=False)

    n = sizes["circuit"]
    say(f"three-process circuit: {n:,} sequential ticks, clock -> iopin -> buzzer, {rounds} rounds")
    got = await alternate(
        rounds, {"mesh": lambda: peers.circuit(peers.MESH, n), "raw": lambda: peers.circuit(peers.RAW, n)}
    )
    for key, scenario, unit, target, higher in (
        ("ticks_per_s", "three-process circuit", "ticks/s", "", True),
        ("cpu_us_per_tick", "three-process circuit, CPU per tick (all processes)", "µs", "<= 1.0", False),
    ):
        mesh_, raw_ = [one[key] for one in got["mesh"]], [one[key] for one in got["raw"]]
        row(scenario, unit, mesh_, raw_, "raw websockets, 3 processes", target, higher_is_better=higher)

    n, buzzers = sizes["targets"], 16
    say(f"tick to 1 and to {buzzers} buzzers: {n:,} ticks each, all at once and in turn, {rounds} rounds")
    got = await alternate(
        rounds,
        {
            "together": lambda: mesh_side.per_extra_target(n, buzzers),
            "in turn": lambda: mesh_side.per_extra_target(n, buzzers, in_turn=True),
        },
    )
    row(
        f"tick to {buzzers} buzzers vs 1: each extra target",
        "ms",
        got["together"],
        got["in turn"],
        "each awaited in turn",
        "<= 0.3 ms",
        higher_is_better=False,
    )

    for subscribers, count in sizes["fanout"].items():
        say(f"fan-out to {subscribers}: {count:,} messages, {rounds} rounds")
        got = await alternate(
            rounds,
            {
                "mesh": lambda s=subscribers, c=count: mesh_side.fan_out(s, c),
                "raw": lambda s=subscribers, c=count: raw.broadcast_rate(s, c),
            },
        )
        row(
            f"fan-out to {subscribers}",
            "deliveries/s",
            got["mesh"],
            got["raw"],
            "raw broadcast()",
            ">= 1.0" if subscribers == 100 else "",
        )

    say(f"connection reuse: {sizes['reuse']:,} on the link vs {sizes['naive']:,} naive, {rounds} rounds")
    got = await alternate(
        rounds,
        {
            "pipelined": lambda: mesh_side.stream_one_hop(sizes["reuse"]),
            "one": lambda: mesh_side.one_at_a_time(sizes["reuse"]),
            "naive": lambda: raw.connection_per_message(sizes["naive"]),
        },
    )
    row(
        "link, stream() of many vs a connection per message",
        "msg/s",
        got["pipelined"],
        got["naive"],
        "raw connect-send-close",
        ">= 20",
    )
    row("link, one at a time vs a connection per message", "msg/s", got["one"], got["naive"], "raw connect-send-close")

    n = sizes["stream"]
    say(f"compression: raw pipelined, {n:,} messages, with and without permessage-deflate, {rounds} rounds")
    got = await alternate(
        rounds,
        {
            "deflate": lambda: raw.pipelined(n, compression="deflate"),
            "plain": lambda: raw.pipelined(n),
        },
    )
    row(
        "permessage-deflate on small frames (why links turn it off)",
        "msg/s",
        got["deflate"],
        got["plain"],
        "raw pipelined, no compression",
    )

    scale: list[dict[str, Any]] = []
    for size, hops in sizes["rings"].items():
        say(f"scale: {size} nodes in one process, a ring, {hops:,} hops")
        figures = fresh_ring(size, hops)
        scale.append({"what": f"{size:,} node{'s' if size != 1 else ''} in one process", **figures})
    for links, seconds in sizes["idle"].items():
        say(f"scale: {links:,} idle links in one process, {seconds:g} s")
        scale.append({"what": f"{links:,} idle links in one process", **fresh("bench.idle", links, seconds)})
    for nodes in sizes["up"]:
        say(f"scale: {nodes:,} buzzers started by arduino-mesh up")
        scale.append(up.start(nodes))
    for nodes, seconds in sizes["up_idle"].items():
        say(f"scale: {nodes:,} subscribed nodes idle under arduino-mesh up, {seconds:g} s")
        scale.append(up.idle(nodes, seconds))
    count = sizes["processes"]
    say(f"scale: {count} nodes as processes")
    scale.append({"what": f"{count} nodes as processes", **mesh_side.processes(count)})
    simulated = sizes["simulate"]
    say(f"simulate: {simulated['day']} of the shipped circuit, through arduino-mesh simulate")
    day = simulation.day(simulated["day"])
    length, chains = simulated["chains"]
    say(f"simulate: {length} of {4 * chains} nodes, through arduino-mesh simulate")
    return [*rows, {"scale": scale}, {"simulate": [day, simulation.chains(length, chains)]}]


def fresh_ring(size: int, hops: int) -> dict[str, float]:
    """The ring in a new interpreter: memory per node is then what the nodes cost, nothing else."""
    return fresh("bench.ring", size, hops)


def fresh(module: str, *args: float) -> dict[str, float]:
    """``python -m module args...`` in a new interpreter: its one line of JSON (a note it prints goes on to stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", module, *map(str, args)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    if done.stderr:
        print(done.stderr, end="", file=sys.stderr)
    return json.loads(done.stdout)


def last(path: Path) -> dict[str, Any] | None:
    """The figures a previous full run left in ``path``, if any."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny counts, one round: a smoke run in seconds")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--scale",
        action="store_true",
        help="only the scale-out comparison: 1 publisher to 1,000 subscribers, the mesh against Mosquitto and"
        " the mqtt bridge, and the bridge's throughput both ways (about 3 minutes; see docs/scale.md)",
    )
    which.add_argument(
        "--peers",
        action="store_true",
        help="only across processes: the three-process circuit and 1 publisher to 100 subscribers in 4 processes,"
        " the mesh against raw websockets, Mosquitto (paho, QoS 0 and 1) and Redis pub/sub (about 5 minutes)",
    )
    parser.add_argument(
        "--uvloop", action="store_true", help="with --peers: the circuit's mesh and raw websockets again on uvloop"
    )
    parser.add_argument(
        "--against",
        type=Path,
        action="append",
        metavar="CHECKOUT",
        help="with --peers: the circuit also on the mesh of another checkout (e.g. a worktree at the base commit),"
        " interleaved with this one's: before against after in one run (repeatable)",
    )
    parser.add_argument(
        "--rounds", type=int, help="rounds per scenario (default 5, 3 with --scale or --peers; 1 with --quick)"
    )
    parser.add_argument("--subscribers", type=int, help="with --scale: subscribers (default 1,000; 20 with --quick)")
    parser.add_argument("--ticks", type=int, help="with --peers: ticks of the circuit (default 5,000; 50 with --quick)")
    parser.add_argument(
        "--json",
        type=Path,
        help="where to write every figure (default bench/results.json, bench/scale.json with --scale,"
        " bench/peers.json with --peers; none with --quick)",
    )
    parser.add_argument(
        "--docs", type=Path, help="regenerate this Markdown file (default docs/benchmarks.md; none with --quick)"
    )
    args = parser.parse_args(argv)
    if (args.uvloop or args.against) and not args.peers:
        parser.error("--uvloop and --against go with --peers")
    kind = "scale" if args.scale else "peers" if args.peers else "results"
    if args.scale:
        sizes = dict(scale.QUICK if args.quick else scale.FULL)
        if args.subscribers:
            sizes["subscribers"] = args.subscribers
    elif args.peers:
        sizes = dict(peers.QUICK if args.quick else peers.FULL)
        if args.ticks:
            sizes["ticks"] = args.ticks
    else:
        sizes = dict(QUICK if args.quick else FULL)
    if args.rounds:
        sizes["rounds"] = args.rounds
    logging.disable(logging.CRITICAL)  # the nodes' log lines are not what is measured
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    began = time.perf_counter()
    if args.scale:
        env = {**environment((*PACKAGES, *MQTT_PACKAGES)), **scale.machine()}
        results: Any = asyncio.run(scale.run(sizes, say))
    elif args.peers:
        env = {**environment((*PACKAGES, *MQTT_PACKAGES, *PEER_PACKAGES)), **peers.machine()}
        results = asyncio.run(peers.run(sizes, say, uvloop=args.uvloop, against=args.against))
    else:
        env = environment()
        results = asyncio.run(run(sizes, say))
    report = {
        "environment": env,
        "quick": args.quick,
        "sizes": {k: str(v) for k, v in sizes.items()},
        "seconds": round(time.perf_counter() - began, 1),
        kind: results,
    }
    print({"scale": scale_table, "peers": peers_table, "results": table}[kind](report))
    default = ROOT / "bench" / ("results.json" if kind == "results" else f"{kind}.json")
    json_path = args.json or (None if args.quick else default)
    if json_path:
        json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        print(f"figures: {json_path}", file=sys.stderr)
    docs_path = args.docs or (None if args.quick else ROOT / "docs" / "benchmarks.md")
    if docs_path:
        # Each kind of run regenerates its own section; the others stay those of their last full run.
        reports = {
            name: last(ROOT / "bench" / ("results.json" if name == "results" else f"{name}.json"))
            for name in ("results", "scale", "peers")
        }
        reports[kind] = report
        if reports["results"] is None:
            print(f"report: {docs_path} not written: no bench/results.json (run python -m bench)", file=sys.stderr)
            return 0
        docs_path.write_text(markdown(reports["results"], reports["scale"], reports["peers"]))
        print(f"report: {docs_path}", file=sys.stderr)
        if args.docs is None:  # the README's headline rows, from the page just written
            headline.rewrite(ROOT / "README.md", docs_path.read_text())
            print("report: README.md's headline table", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
