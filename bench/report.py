"""The figures as a terminal table and as docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

PACKAGES = ("websockets", "click", "pyyaml")
MQTT_PACKAGES = ("aiomqtt", "paho-mqtt")
PEER_PACKAGES = ("redis", "uvloop")
NOTES = Path(__file__).with_name("NOTES.md")
SCALE_NOTES = Path(__file__).with_name("SCALE_NOTES.md")


def environment(packages: tuple[str, ...] = PACKAGES) -> dict[str, Any]:
    """The machine, Python and library versions, for the record."""
    cpu = "unknown"
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    versions = {}
    for name in packages:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    import asyncio

    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": platform.platform(),
        "event_loop": type(asyncio.new_event_loop()).__module__,
        "packages": versions,
    }


def _meets(row: dict[str, Any]) -> str:
    target = row["target"]
    if not target:
        return ""
    op, value, *unit = target.split()  # "<= 1.1": the ratio; "<= 0.3 ms": the mesh's own figure
    figure = row["mesh"]["median"] if unit else row["ratio"]
    ok = figure >= float(value) if op == ">=" else figure <= float(value)
    return f"{target} {'met' if ok else 'MISSED'}"


def format_figure(value: float) -> str:
    """A figure as the tables show it: whole above 100, two decimals below."""
    return f"{value:,.0f}" if value >= 100 else f"{value:,.2f}"


#: The columns of the simulate table.
SIMULATE_HEADER = ["simulate", "wall (CPU)", "speed-up", "messages per wall second", "target"]


def simulate_rows(report: dict[str, Any]) -> list[list[str]]:
    """The runs of ``arduino-mesh simulate`` (bench/simulate.py), as table rows; none in an older report."""
    found = []
    for row in report["results"]:
        for item in row.get("simulate", ()):
            met = "met" if item["wall_s"] <= item["target_s"] else "MISSED"
            found.append(
                [
                    item["what"],
                    f"{item['wall_s']:.1f} s ({item['cpu_s']:.1f} s)",
                    f"{item['speedup']:,.0f}x",
                    f"{item['messages_per_s']:,.0f} ({item['messages']:,.0f} messages)",
                    f"wall <= {item['target_s']:g} s {met}" if item["length"] in ("24h", "1h") else "",
                ]
            )
    return found


def rows(report: dict[str, Any]) -> tuple[list[list[str]], list[list[str]]]:
    measured, scale = [], []
    for row in report["results"]:
        if "simulate" in row:
            continue
        if "scale" in row:
            for item in row["scale"]:
                if "cpu_percent" in item:  # idle links: what their keepalive costs
                    started = f"{item['startup_s']:.2f} s" if "startup_s" in item else "-"
                    scale.append([item["what"], started, f"{item['cpu_percent']:.1f} % of a core while idle", "-"])
                    continue
                if "nodes" in item:  # through `arduino-mesh up` itself: the stop is the last column
                    stop = item.get("stop_s")
                    scale.append(
                        [
                            item["what"],
                            f"{item['startup_s']:.2f} s ({item['startup_cpu_s']:.2f} s CPU,"
                            f" {1000 * item['startup_s'] / item['nodes']:.2f} s per 1,000)",
                            f"{item['kib_per_node']:,.0f} KiB per node",
                            f"stopped in {stop:.2f} s" if stop is not None else "did not stop within 60 s",
                        ]
                    )
                    continue
                scale.append(
                    [
                        item["what"],
                        f"{item['startup_s']:.2f} s"
                        + (f" ({item['startup_cpu_s']:.2f} s CPU)" if "startup_cpu_s" in item else ""),
                        f"{item.get('kib_per_node', item.get('kib_per_process', 0)):,.0f} KiB"
                        + (" per node" if "kib_per_node" in item else " per process"),
                        f"{item['hops_per_s']:,.0f} hops/s" if "hops_per_s" in item else item.get("note", "-"),
                    ]
                )
            continue
        m, r = row["mesh"], row["raw"]
        measured.append(
            [
                row["scenario"],
                row["unit"],
                _spread(m),
                f"{row['raw_twin']}: {_spread(r)}",
                f"{row['ratio']:.2f}",
                _meets(row),
            ]
        )
    return measured, scale


def table(report: dict[str, Any]) -> str:
    """An aligned table for the terminal."""
    measured, scale = rows(report)
    out = []
    for header, body in (
        (["scenario", "unit", "mesh median (min-max)", "raw twin median (min-max)", "mesh/raw", "target"], measured),
        (["scale", "start-up", "memory", "around the ring"], scale),
        (SIMULATE_HEADER, simulate_rows(report)),
    ):
        out += _aligned(header, body)
    return "\n".join(out)


def _markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
    """A Markdown table's lines, and the blank line after it."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in body),
        "",
    ]


def markdown(
    report: dict[str, Any], scale_report: dict[str, Any] | None = None, peers_report: dict[str, Any] | None = None
) -> str:
    """docs/benchmarks.md: the environment, both tables, the notes kept in bench/NOTES.md, then the
    figures of the last ``python -m bench --peers`` (``peers_report``, notes in bench/PEERS_NOTES.md) and
    of the last ``python -m bench --scale`` (``scale_report``, notes in bench/SCALE_NOTES.md)."""
    env = report["environment"]
    measured, scale = rows(report)
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python -m bench` (do not edit by hand: edit `bench/NOTES.md` for the text below the tables;"
        " the section across processes comes from `python -m bench --peers`, its text from `bench/PEERS_NOTES.md`;"
        " the last section from `python -m bench --scale`, its text from `bench/SCALE_NOTES.md`).",
        f"The mesh and its raw-websockets twin ran in alternation, {report['sizes']['rounds']} rounds each (tick to buzz:"
        " both open, by blocks of ticks in turn), in one run "
        f"of {report['seconds']:.0f} s; medians with min-max. Ratios are mesh/raw from the same run.",
        "",
        f"- Machine: {env['cores']} cores, {env['cpu']} ({env['machine']}), {env['system']}",
        f"- Python {env['python']} ({env['implementation']}), event loop from `{env['event_loop']}`",
        "- " + ", ".join(f"{name} {v}" for name, v in env["packages"].items()),
        "",
        *_markdown_table(["scenario", "unit", "mesh", "raw twin", "mesh/raw", "target"], measured),
        *_markdown_table(["scale", "start-up", "memory", "around the ring"], scale),
    ]
    simulated = simulate_rows(report)
    if simulated:
        lines += _markdown_table(SIMULATE_HEADER, simulated)
    if NOTES.exists():
        lines += [NOTES.read_text().rstrip(), ""]
    if peers_report is not None:
        lines += peers_markdown(peers_report)
    if scale_report is not None:
        lines += scale_markdown(scale_report)
    return "\n".join(lines)


PARTS = ("publisher", "broker", "bridge", "subscribers")


def _cpu(row: dict[str, Any], part: str) -> str:
    figure = row.get(f"{part}_cpu_us")
    return f"{figure['median']:.1f}" if figure else "-"


def _mib(row: dict[str, Any], part: str) -> str:
    kib = row[f"{part}_kib"]["median"]
    return f"{kib / 1024:,.1f} MiB" if kib else "-"


def scale_rows(report: dict[str, Any]) -> tuple[list[list[str]], list[list[str]], list[list[str]]]:
    """The fan-out, its ratios and the bridge's throughput, as rows of text."""
    scale = report["scale"]
    fan_out = [
        [
            *_rate_columns(row),
            " / ".join(_mib(row, part) for part in PARTS[:3]),
            f"{row['kib_per_subscriber']['median']:,.0f} KiB",
        ]
        for row in scale["fan_out"]
    ]
    ratios = [[item["what"], f"{item['ratio']:.2f}"] for item in scale["ratios"]]
    through = [_rate_columns(row) for row in scale["through"]]
    return fan_out, ratios, through


def _rate_columns(row: dict[str, Any]) -> list[str]:
    """What every scale row shows: the system, deliveries/s (median, range), CPU per delivery, by part, lost."""
    rate = row["deliveries_per_s"]
    return [
        row["system"],
        _spread(rate),
        f"{row['cpu_us_per_delivery']['median']:.1f}",
        " / ".join(_cpu(row, part) for part in PARTS),
        f"{row['lost_in_all']:,}",
    ]


FAN_OUT_HEADER = [
    "1 publisher -> N subscribers",
    "deliveries/s median (min-max)",
    "CPU µs per delivery",
    "of which publisher / broker / bridge / subscribers",
    "lost, all rounds",
    "peak memory: publisher / broker / bridge",
    "per subscriber",
]
THROUGH_HEADER = [
    "1 publisher -> 1 subscriber",
    "messages/s median (min-max)",
    "CPU µs per message",
    "of which publisher / broker / bridge / subscriber",
    "lost, all rounds",
]


def scale_table(report: dict[str, Any]) -> str:
    """The scale-out figures as aligned tables for the terminal."""
    fan_out, ratios, through = scale_rows(report)
    out = [f"skipped: {why}" for why in dict.fromkeys(report["scale"]["skipped"].values())]
    for header, body in (
        (FAN_OUT_HEADER, fan_out),
        (["same run", "ratio"], ratios),
        (THROUGH_HEADER, through),
    ):
        if not body:
            continue
        out += _aligned(header, body)
    return "\n".join(out)


def scale_markdown(report: dict[str, Any]) -> list[str]:
    """The "Past one mesh" section of docs/benchmarks.md, from ``python -m bench --scale``."""
    sizes, env = report["sizes"], report["environment"]
    fan_out, ratios, through = scale_rows(report)
    lines = [
        "## Past one mesh: 1 publisher to many subscribers, the mesh, Mosquitto and the bridge",
        "",
        f"Generated by `python -m bench --scale` in one run of {report['seconds']:.0f} s:"
        f" 1 publisher to {int(sizes['subscribers']):,} subscribers spread over {sizes['processes']} processes,"
        f" {int(sizes['messages']):,} messages each, {sizes['rounds']} interleaved rounds, every process fresh for each"
        f" measurement; the bridge's throughput with {int(sizes['through']):,} messages one way."
        f" {env.get('mosquitto', 'Mosquitto')}; the MQTT clients are aiomqtt {env['packages'].get('aiomqtt', '?')}"
        f" on paho-mqtt {env['packages'].get('paho-mqtt', '?')}. Load average at the start:"
        f" {env.get('load', '?')}. See [scale.md](scale.md) for what the figures mean for a design.",
        "",
    ]
    for why in dict.fromkeys(report["scale"]["skipped"].values()):
        lines += [f"Skipped: {why}.", ""]
    for header, body in (
        (FAN_OUT_HEADER, fan_out),
        (["same run", "ratio"], ratios),
        (THROUGH_HEADER, through),
    ):
        if body:
            lines += _markdown_table(header, body)
    if SCALE_NOTES.exists():
        lines += [SCALE_NOTES.read_text().rstrip(), ""]
    return lines


PEERS_NOTES = Path(__file__).with_name("PEERS_NOTES.md")
CIRCUIT_HEADER = [
    "three-process circuit",
    "ticks/s median (min-max)",
    "CPU µs per tick, all processes",
    "ticks/s: mesh/this",
    "CPU per tick: mesh/this",
]
PEERS_FAN_OUT_HEADER = [
    "1 publisher -> N subscribers, across processes",
    "deliveries/s median (min-max)",
    "CPU µs per delivery, all processes",
    "lost, all rounds",
    "deliveries/s: mesh/this",
    "CPU per delivery: mesh/this",
]


def _spread(figure: dict[str, float]) -> str:
    return f"{format_figure(figure['median'])} ({format_figure(figure['min'])}-{format_figure(figure['max'])})"


def _ratio(mesh: dict[str, Any], row: dict[str, Any], key: str) -> str:
    theirs = row[key]["median"]
    return f"{mesh[key]['median'] / theirs:.2f}" if theirs else "-"


def peers_rows(results: dict[str, Any]) -> tuple[list[list[str]], list[list[str]]]:
    """The circuit and the cross-process fan-out as rows of text, each with its ratios to the mesh's row."""
    circuit, fan_out = [], []
    rows = results["circuit"]
    for row in rows:
        circuit.append(
            [
                row["system"],
                _spread(row["ticks_per_s"]),
                _spread(row["cpu_us_per_tick"]),
                _ratio(rows[0], row, "ticks_per_s"),
                _ratio(rows[0], row, "cpu_us_per_tick"),
            ]
        )
    rows = results["fan_out"]
    for row in rows:
        fan_out.append(
            [
                row["system"],
                _spread(row["deliveries_per_s"]),
                _spread(row["cpu_us_per_delivery"]),
                f"{sum(run['lost'] for run in row['runs']):,}",
                _ratio(rows[0], row, "deliveries_per_s"),
                _ratio(rows[0], row, "cpu_us_per_delivery"),
            ]
        )
    return circuit, fan_out


RESP_HEADER = [
    "Redis clients: a node / redis-server",
    "deliveries/s",
    "CPU per delivery, all processes",
    "server CPU µs per delivery, node vs redis-server",
]


def resp_rows(results: dict[str, Any]) -> list[list[str]]:
    """The node serving Redis clients against redis-server serving the same clients (node/redis-server)."""
    return [
        [
            row["node"].removeprefix("Redis clients on a node, "),
            f"{row['deliveries_per_s_ratio']:.2f}",
            f"{row['cpu_us_per_delivery_ratio']:.2f}",
            f"{row['server_cpu_us']['node']:.2f} vs {row['server_cpu_us']['redis']:.2f}",
        ]
        for row in results.get("resp", [])
    ]


def _aligned(header: list[str], body: list[list[str]]) -> list[str]:
    everything = [header, *body]
    widths = [max(len(r[i]) for r in everything) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in everything] + [""]


def peers_table(report: dict[str, Any]) -> str:
    """``python -m bench --peers`` for the terminal."""
    circuit, fan_out = peers_rows(report["peers"])
    out = [f"skipped: {why}" for why in report["peers"]["skipped"].values()]
    for header, body in (
        (CIRCUIT_HEADER, circuit),
        (PEERS_FAN_OUT_HEADER, fan_out),
        (RESP_HEADER, resp_rows(report["peers"])),
    ):
        if body:
            out += _aligned(header, body)
    return "\n".join(out)


def peers_markdown(report: dict[str, Any]) -> list[str]:
    """The "Across processes" section of docs/benchmarks.md, from ``python -m bench --peers``."""
    sizes, env = report["sizes"], report["environment"]
    circuit, fan_out = peers_rows(report["peers"])
    lines = [
        "## Across processes: the mesh, raw websockets, Mosquitto and Redis",
        "",
        f"Generated by `python -m bench --peers` in one run of {report['seconds']:.0f} s, {sizes['rounds']} interleaved"
        f" rounds, every process fresh for each measurement: the circuit clock -> iopin -> buzzer as three processes,"
        f" {int(sizes['ticks']):,} strictly sequential ticks; 1 publisher to {int(sizes['subscribers']):,} subscribers"
        f" in {sizes['processes']} processes, {int(sizes['messages']):,} messages. CPU is user + system time of every"
        f" process of a system (its broker too) over the timed span. {env.get('mosquitto', 'Mosquitto')};"
        f" {env.get('redis', 'Redis')}; paho-mqtt {env['packages'].get('paho-mqtt', '?')}, aiomqtt"
        f" {env['packages'].get('aiomqtt', '?')}, redis-py {env['packages'].get('redis', '?')}. Load average at the"
        f" start: {env.get('load', '?')}. Ratios are mesh/this from the same run: above 1 for ticks or deliveries per"
        " second, below 1 for CPU, the mesh is ahead.",
        "",
    ]
    for why in report["peers"]["skipped"].values():
        lines += [f"Skipped: {why}.", ""]
    for header, body in (
        (CIRCUIT_HEADER, circuit),
        (PEERS_FAN_OUT_HEADER, fan_out),
        (RESP_HEADER, resp_rows(report["peers"])),
    ):
        if body:
            lines += _markdown_table(header, body)
    if PEERS_NOTES.exists():
        lines += [PEERS_NOTES.read_text().rstrip(), ""]
    return lines
