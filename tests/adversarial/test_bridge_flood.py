"""A flood on the MQTT bridge's `in` topics, its wired node slow: the bridge's memory stays bounded and it stays connected.

The bridge and the slow node run under ``./arduino.py up`` (a real process, its peak memory
read from ``/proc``); a paho client floods ``devices/x`` with QoS 0 and QoS 1 messages as fast
as it can. The bridge holds QoS 0 within its bound (past it, dropped and counted) and
acknowledges QoS 1 only once handled, so the broker holds that backlog, within the broker's
own limits (here ``max_queued_messages 200000``: Debian's Mosquitto 2.0.11 leaks its in-flight
quota when it drops a queued QoS 1 message, and its client then stalls; fixed in 2.0.13). Every
QoS 1 message arrives, once, and the bridge never lost its broker.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from tests.adversarial.test_attacks import peak_rss
from tests.broker import Broker
from tests.helpers import DEADLINE, MS, arduino, free_ports, run_arduino, write_grid

pytestmark = [pytest.mark.adversarial, pytest.mark.e2e]

#: The process's peak resident memory under the flood: the bridge's bounds (4 MiB of QoS 0 in, 16 MiB out) and
#: the node's own, with room for the interpreter (about 40 MiB).
RSS_BOUND = 100 * 2**20
FLOOD = (
    20_000  # messages of 8 KiB (160 MB), one in ten at QoS 1: far more than the bridge takes while its target is slow
)
SURE = 100  # QoS 1 messages after the flood: every one must arrive, once

SLOW = '''\
"""Takes its time over each message, and counts them by QoS tag."""

import asyncio

from nodes import FactoryLoop, reactive


class Slow(FactoryLoop):
    @reactive
    async def loop(self, channel: str, message: str) -> str:
        await asyncio.sleep(0.001)
        if message.startswith("sure "):
            self.out(message)
        return "ok"
'''


@pytest.mark.mosquitto(extra="max_queued_messages 200000\n")
def test_a_flood_on_the_bridges_in_topics_is_bounded_and_loses_no_qos_1_message(broker: Broker, tmp_path: Path):
    """The bridge's peak memory stays under its bound and every QoS 1 message reaches the slow node once."""
    (tmp_path / "sketches").mkdir()
    (tmp_path / "sketches" / "slow.py").write_text(SLOW)
    bridge_port, slow_port = free_ports(2)
    grid = write_grid(
        tmp_path,
        f"""\
nodes:
  bridge: {{sketch: mqtt, port: {bridge_port}, params: {{url: "{broker.url}", in: ["devices/#"], qos: 1}}}}
  slow: {{sketch: slow, port: {slow_port}}}
wires:
  - bridge -> slow
""",
    )
    up = arduino("--grid", grid, "up")
    up.expect(r"bridge\s+\| connected to ")
    flooder = paho.Client(paho.CallbackAPIVersion.VERSION2)
    flooder.connect("127.0.0.1", broker.port)
    flooder.loop_start()
    try:
        payload = "x" * 8192
        done = threading.Event()

        def flood() -> None:
            for i in range(FLOOD):
                flooder.publish("devices/x", f"{i} {payload}", qos=1 if i % 10 == 0 else 0)
                if i % 200 == 0:
                    time.sleep(0.001)  # paho's own queue drains to the broker meanwhile
            done.set()

        thread = threading.Thread(target=flood, daemon=True)
        thread.start()
        assert done.wait(120_000 * MS), "the flood did not finish"
        for i in range(SURE):
            flooder.publish("devices/sure", f"sure {i}", qos=1).wait_for_publish(DEADLINE)
        up.expect(rf"slow\s+\| sure {SURE - 1}$", timeout=120_000 * MS)
        rss = peak_rss(up.pid)
        status = run_arduino("--grid", grid, "status", "--json")
        report = next(node for node in json.loads(status.stdout) if node.get("node") == "bridge")["report"]
    finally:
        flooder.loop_stop()
        flooder.disconnect()
        up.signal(signal.SIGTERM)
        up.wait()
    sure = [int(n) for n in re.findall(r"slow\s+\| sure (\d+)$", up.output(), re.MULTILINE)]
    print(f"\nbridge flood: peak RSS {rss / 2**20:.0f} MiB; {report['dropped']} dropped; {report['received']} in")
    assert sorted(sure) == list(range(SURE)), "a QoS 1 message sent after the flood was lost or repeated"
    assert rss <= RSS_BOUND, f"peak RSS {rss / 2**20:.0f} MiB"
    assert report["state"] == "connected" and "lost the broker" not in up.output()
