"""The MQTT bridge against a real Mosquitto, with Mosquitto's own mosquitto_pub and mosquitto_sub as the foreign clients.

Nodes run in the test's event loop (port 0), except where a process must die (the will):
there the bridge is a real ``./arduino.py`` process. Every wait for a foreign client runs
in a thread (``tests.broker.expect``, ``apub``), so the nodes keep running meanwhile.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import trustme

from mesh.errors import GridError
from mesh.grid import Grid, build_grid, read_grid
from nodes.runtime import Node
from sketches.mqtt import MISSING, Bridge
from tests.broker import Broker, expect
from tests.helpers import DEADLINE, MS, arduino, free_ports, run_arduino, start_circuit, stop_circuit, until, write_grid

pytestmark = pytest.mark.e2e

PASSWORD = "s3cret-Pa55word-xyz"
#: What mosquitto_pub and mosquitto_sub log in with on a broker that refuses anonymous clients.
DEVICE = {"device": "device-Pa55word-abc"}


def circuit(url: str, **bridge: Any) -> Grid:
    """bridge -> clock -> iopin -> buzzer; the iopin's one bit is always 1, so every tick buzzes."""
    return build_grid(
        {
            "bridge": {"sketch": "mqtt", "port": 0, "params": {"url": url, **bridge}},
            "clock": {"sketch": "clock", "port": 0, "params": {"tacks": 1, "delay": 1}},
            "iopin": {"sketch": "iopin", "port": 0, "params": {"chance": 1, "sequence": 1}},
            "buzzer": {"sketch": "buzzer", "port": 0},
        },
        wires=["bridge -> clock", "clock -> iopin", "iopin -> buzzer"],
    )


def lines(caplog: pytest.LogCaptureFixture, name: str = "mesh.bridge") -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == name]


async def test_mosquitto_pub_on_a_button_sounds_the_buzzer(broker: Broker):
    """`mosquitto_pub -t devices/button -m 1` ticks the clock through the bridge, and the buzzer sounds."""
    nodes = await start_circuit(circuit(broker.url, **{"in": ["devices/#"]}))
    heard: list[tuple[str, str]] = []
    try:
        bridge, clock, buzzer = (nodes[name].sketch for name in ("bridge", "clock", "buzzer"))
        await nodes["buzzer"].sketch.subscribe("bridge/#", lambda key, data: heard.append((key, data)))
        await until(lambda: bridge.state == "connected", "the bridge connected")
        await until(lambda: len(buzzer.sounds) == 1, "the clock's own tick sounding")
        await broker.apub("devices/button", "1")
        await until(lambda: len(buzzer.sounds) == 2, "the button's tick sounding")
        assert list(buzzer.sounds) == ["buzz buzz buzz"] * 2
        await until(lambda: len(clock.acks) == 2, "the clock's two ticks acked")
        await until(lambda: ("bridge/devices/button", "1") in heard, "the button in the mesh as bridge/devices/button")
        report = nodes["bridge"].status()["report"]
        assert report == {
            "broker": broker.url,
            "state": "connected",
            "sent": 0,
            "received": 1,
            "dropped": 0,
            "queued": 0,
        }
    finally:
        await stop_circuit(nodes)


async def test_mosquitto_sub_sees_the_circuit(broker: Broker):
    """`mosquitto_sub -t 'arduino-mesh/#' -v` sees iopin/pin, the clock's ticks, the buzzer's sounds and the bridge online."""
    sub = await broker.asub("arduino-mesh/#")
    nodes = await start_circuit(circuit(broker.url, out=["#"], **{"in": ["devices/#"]}))
    try:
        await expect(sub, r"^arduino-mesh/\$state/bridge online$")
        await until(lambda: nodes["bridge"].status()["report"]["state"] == "connected", "connected")
        await broker.apub("devices/button", "1")  # a tick after the bridge's subscriptions are surely in place
        for line in ("iopin/pin 1", "buzzer/sound buzz buzz buzz", "clock/tick 2"):  # in any order between them
            await expect(sub, rf"^arduino-mesh/{line}$", anywhere=True)
    finally:
        await stop_circuit(nodes)
    await expect(sub, r"^arduino-mesh/\$state/bridge offline$")  # a clean stop says so


async def test_no_echo_loop_between_the_mesh_and_mqtt(broker: Broker):
    """out: ['#'] and in: ['#'] on one prefix: each message crosses once, and nothing comes back."""
    grid = build_grid(
        {
            "bridge": {"sketch": "mqtt", "port": 0, "params": {"url": broker.url, "out": ["#"], "in": ["#"]}},
            "iopin": {"sketch": "iopin", "port": 0},  # publishes when the test says so
        }
    )
    sub = await broker.asub("#")
    nodes = await start_circuit(grid)
    try:
        bridge = nodes["bridge"].sketch
        assert isinstance(bridge, Bridge)
        await until(lambda: bridge.state == "connected", "connected")
        await until(lambda: nodes["iopin"].hub.count == 1, "the bridge's subscription at the iopin")
        await nodes["iopin"].sketch.publish("pin", 1)
        await broker.apub("devices/x", "7")
        await expect(sub, r"^arduino-mesh/iopin/pin 1$", anywhere=True)
        await until(lambda: bridge.received == 1, "devices/x in the mesh")
        await broker.apub("devices/end", "0")  # a last message: what came before it has crossed
        await until(lambda: bridge.received == 2, "devices/end in the mesh")
        await expect(sub, r"^devices/end 0$", anywhere=True)
        await until(lambda: not bridge.queue, "the queue empty")
        assert (bridge.sent, bridge.received, bridge.dropped) == (1, 2, 0)
        crossed = [line for line in sub.lines if not line.startswith("arduino-mesh/$state/")]
        # pin (mesh -> bridge -> broker) and devices/x (mosquitto_pub -> broker) reach the broker by two
        # clients: either may be first. Both come before devices/end, sent once pin had crossed.
        assert sorted(crossed[:2]) == ["arduino-mesh/iopin/pin 1", "devices/x 7"] and crossed[2:] == ["devices/end 0"]
    finally:
        await stop_circuit(nodes)


def numbers(process: Any, pattern: str) -> set[int]:
    return {int(match[1]) for line in process.lines if (match := re.match(pattern, line))}


async def test_a_broker_killed_and_restarted_mid_run_loses_nothing_at_qos_1(tmp_path: Path):
    """A persistent mosquitto_sub session sees every tick the mesh published, across a SIGKILL of the broker."""
    # Saved after every change, so that a SIGKILL loses nothing the broker acknowledged.
    broker = Broker(tmp_path / "mosquitto", extra="autosave_on_changes true\nautosave_interval 1")
    broker.start()
    grid = build_grid(
        {
            "bridge": {"sketch": "mqtt", "port": 0, "params": {"url": broker.url, "out": ["clock/tick"]}},
            "clock": {"sketch": "clock", "port": 0, "params": {"tacks": 0, "delay": 20 * MS}},
        }
    )
    keeper = ("-c", "-i", "keeper", "-q", "1")
    sub = await broker.asub("arduino-mesh/clock/tick", *keeper)
    nodes = await start_circuit(grid)
    try:
        bridge, clock = nodes["bridge"].sketch, nodes["clock"].sketch
        assert isinstance(bridge, Bridge)
        await until(lambda: bridge.state == "connected", "connected")
        await expect(sub, r"^arduino-mesh/clock/tick 5$")
        broker.kill()
        sub.kill()
        await until(lambda: bridge.state.startswith("down"), "the bridge seeing the broker down")
        down_at = clock.ticks
        await until(lambda: clock.ticks >= down_at + 10, "ten ticks while the broker is down")
        assert bridge.queue, "what the mesh published meanwhile waits for the broker"
        await broker.astart()
        await until(lambda: bridge.state == "connected", "reconnected")
        again = await broker.asub("arduino-mesh/clock/tick", *keeper)
        last = clock.ticks + 5
        await expect(again, rf"^arduino-mesh/clock/tick {last}$")
    finally:
        await stop_circuit(nodes)
        broker.kill()
    seen = numbers(sub, r"^arduino-mesh/clock/tick (\d+)$") | numbers(again, r"^arduino-mesh/clock/tick (\d+)$")
    first = min(seen)
    assert set(range(first, last + 1)) - seen == set(), f"ticks lost across the restart (down at tick {down_at})"


async def test_a_broker_down_at_the_start_is_one_line_then_the_bridge_connects(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """The bridge starts before its broker: one warning, status says down, then it connects when the broker comes up."""
    caplog.set_level(logging.INFO, logger="mesh")
    broker = Broker(tmp_path / "mosquitto")  # not started yet
    grid = build_grid({"bridge": {"sketch": "mqtt", "port": 0, "params": {"url": broker.url, "out": ["#"]}}})
    nodes = await start_circuit(grid)
    try:
        bridge = nodes["bridge"].sketch
        assert isinstance(bridge, Bridge)
        await until(lambda: bridge.state.startswith("down"), "the bridge seeing the broker down")
        assert nodes["bridge"].status()["report"]["state"] == "down: Connection refused"
        await broker.astart()
        await until(lambda: bridge.state == "connected", "connected once the broker is up")
    finally:
        await stop_circuit(nodes)
        broker.kill()
    said = lines(caplog)
    down = [line for line in said if "is down" in line]
    assert down == [f"broker {broker.url} is down: Connection refused; retrying (backoff up to 2 s)"]
    assert f"connected to {broker.url} as arduino-mesh-bridge" in said
    assert not any(record.exc_info for record in caplog.records)


async def test_wrong_credentials_are_one_line_and_the_password_is_never_shown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    """A refused password: one warning, no traceback, status says why; the right one connects. Neither is ever logged."""
    caplog.set_level(logging.DEBUG)
    broker = Broker(tmp_path / "mosquitto", users={"bridge-user": PASSWORD})
    broker.start()
    monkeypatch.setenv("MQTT_USERNAME", "bridge-user")
    monkeypatch.setenv("MQTT_PASSWORD", "wrong-" + PASSWORD)
    grid = build_grid({"bridge": {"sketch": "mqtt", "port": 0, "params": {"url": broker.url}}})
    nodes = await start_circuit(grid)
    try:
        bridge = nodes["bridge"].sketch
        assert isinstance(bridge, Bridge)
        await until(lambda: bridge.state.startswith("down"), "the broker refusing the bridge")
        status = json.dumps(nodes["bridge"].status())
        assert bridge.state == "down: Not authorized"
    finally:
        await stop_circuit(nodes)
    refused = [line for line in lines(caplog) if "is down" in line]
    assert refused == [f"broker {broker.url} is down: Not authorized; retrying (backoff up to 2 s)"]
    assert not any(record.exc_info for record in caplog.records)

    monkeypatch.setenv("MQTT_PASSWORD", PASSWORD)
    nodes = await start_circuit(grid)
    try:
        await until(lambda: nodes["bridge"].sketch.state == "connected", "connected with the right password")
        status += json.dumps(nodes["bridge"].status())
    finally:
        await stop_circuit(nodes)
    broker.kill()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert PASSWORD not in logged and PASSWORD not in status
    assert "bridge-user" not in status


def tls_circuit(folder: Path, url: str, ca: str) -> Grid:
    """The circuit of :func:`circuit` from a grid file in ``folder``, the bridge on ``url`` verifying it with ``ca``."""
    path = write_grid(
        folder,
        f"""nodes:
  bridge: {{sketch: mqtt, port: 0, params: {{url: '{url}', ca: '{ca}', out: ['#'], in: ['devices/#']}}}}
  clock: {{sketch: clock, port: 0, params: {{tacks: 1, delay: 1}}}}
  iopin: {{sketch: iopin, port: 0, params: {{chance: 1, sequence: 1}}}}
  buzzer: {{sketch: buzzer, port: 0}}
wires:
  - bridge -> clock
  - clock -> iopin
  - iopin -> buzzer
""",
    )
    return read_grid(path)


@pytest.mark.mosquitto(tls=True, users={**DEVICE, "bridge-user": PASSWORD})
async def test_over_mqtts_with_a_ca_and_credentials_from_the_environment_the_circuit_crosses(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    """mqtts:// verified with `ca:` (relative to the grid file), user and password from the environment.

    A TLS mosquitto_sub sees the circuit, a TLS mosquitto_pub sounds the buzzer, and the
    password is in no log line (ours, aiomqtt's, Mosquitto's) and not in the status.
    """
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("MQTT_USERNAME", "bridge-user")
    monkeypatch.setenv("MQTT_PASSWORD", PASSWORD)
    assert broker.url.startswith("mqtts://") and broker.ca == tmp_path / "mosquitto" / "ca.pem"
    sub = await broker.asub("arduino-mesh/#")
    nodes = await start_circuit(tls_circuit(tmp_path, broker.url, "mosquitto/ca.pem"))
    try:
        bridge, buzzer = nodes["bridge"].sketch, nodes["buzzer"].sketch
        assert isinstance(bridge, Bridge)
        await expect(sub, r"^arduino-mesh/\$state/bridge online$")
        assert broker.process is not None
        await expect(broker.process, r"as arduino-mesh-bridge \(.*u'bridge-user'\)", anywhere=True)
        await until(lambda: bridge.state == "connected", "connected over TLS")
        await until(lambda: len(buzzer.sounds) == 1, "the clock's own tick sounding")
        await broker.apub("devices/button", "1")
        await until(lambda: len(buzzer.sounds) == 2, "the button's tick sounding")
        for line in ("iopin/pin 1", "buzzer/sound buzz buzz buzz", "clock/tick 2"):
            await expect(sub, rf"^arduino-mesh/{line}$", anywhere=True)
        status = nodes["bridge"].status()
        assert status["report"]["broker"] == broker.url
        assert status["report"]["state"] == "connected"
        assert status["report"]["received"] == 1
    finally:
        await stop_circuit(nodes)
    await expect(sub, r"^arduino-mesh/\$state/bridge offline$")
    logged = [record.getMessage() for record in caplog.records]
    assert f"connected to {broker.url} as arduino-mesh-bridge" in lines(caplog)
    assert not [line for line in logged if PASSWORD in line]
    assert PASSWORD not in json.dumps(status)
    assert PASSWORD not in broker.log()
    assert not any(record.exc_info for record in caplog.records)


@pytest.mark.mosquitto(tls=True)
async def test_a_broker_certificate_from_another_ca_is_one_line_and_the_node_keeps_serving(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """`ca:` naming a CA that did not sign the broker's certificate: one line, no traceback, status says why."""
    from websockets.asyncio.client import connect

    caplog.set_level(logging.DEBUG)
    reason = "certificate verify failed: not signed by the CA given in ca (other-ca.pem)"
    (tmp_path / "other-ca.pem").write_bytes(trustme.CA().cert_pem.bytes())
    nodes = await start_circuit(tls_circuit(tmp_path, broker.url, "other-ca.pem"))
    try:
        bridge = nodes["bridge"].sketch
        assert isinstance(bridge, Bridge)
        await until(lambda: bridge.state.startswith("down"), "the bridge refusing the broker's certificate")
        # It keeps trying (backoff), and says so only once. Mosquitto logs a refused handshake as
        # "New connection from", "Client connection from ... failed" or both: three lines, two tries at least.
        tried = r"(?m)^\d+: (New connection|Client connection) from 127\.0\.0\.1"
        await until(lambda: len(re.findall(tried, broker.log())) >= 3, "the bridge trying again")
        async with connect(f"ws://{nodes['bridge'].address}/lamp", open_timeout=DEADLINE) as ws:
            await ws.send("on")  # the node still serves: the message waits for the broker
            assert await ws.recv() == "queued"
        assert [item.topic for item in bridge.queue if "lamp" in item.topic] == ["arduino-mesh/bridge/lamp"]
        # Down, with the reason, through the retries too.
        await until(lambda: nodes["bridge"].status()["report"]["state"] == f"down: {reason}", "status saying why")
        buzzer = nodes["buzzer"].sketch
        await until(lambda: len(buzzer.sounds) == 1, "the circuit ticking and sounding meanwhile")
    finally:
        await stop_circuit(nodes)
    assert [line for line in lines(caplog) if "is down" in line] == [
        f"broker {broker.url} is down: {reason}; retrying (backoff up to 2 s)"
    ]
    assert not any(record.exc_info for record in caplog.records)
    assert not any("Traceback" in record.getMessage() for record in caplog.records)


async def test_a_message_to_the_bridge_goes_to_mqtt_under_its_channel(broker: Broker):
    """A message sent to the bridge is published on <prefix>/<bridge>/<channel>, `in` without one; acked `sent`."""
    from websockets.asyncio.client import connect

    sub = await broker.asub("arduino-mesh/bridge/#")
    nodes = await start_circuit(build_grid({"bridge": {"sketch": "mqtt", "port": 0, "params": {"url": broker.url}}}))
    try:
        await until(lambda: nodes["bridge"].sketch.state == "connected", "connected")
        for path, message in (("/", "hello"), ("/lamp/set", "on")):
            async with connect(f"ws://{nodes['bridge'].address}{path}", open_timeout=DEADLINE) as ws:
                await ws.send(message)
                assert await ws.recv() == "sent"
        async with connect(f"ws://{nodes['bridge'].address}/a/+", open_timeout=DEADLINE) as ws:
            await ws.send("x")
            assert (await ws.recv()).startswith("error: loop() failed: channel 'a/+' cannot be an MQTT topic")
    finally:
        await stop_circuit(nodes)
    await expect(sub, r"^arduino-mesh/bridge/in hello$")
    await expect(sub, r"^arduino-mesh/bridge/lamp/set on$")


async def test_what_the_mesh_cannot_carry_is_dropped_with_a_warning(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """A binary payload or a topic with an empty level is dropped, counted and logged escaped; the bridge goes on."""
    caplog.set_level(logging.WARNING, logger="mesh")
    nodes = await start_circuit(
        build_grid({"bridge": {"sketch": "mqtt", "port": 0, "params": {"url": broker.url, "in": ["devices/#"]}}})
    )
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\n\x00[ bridge ] forged")
    try:
        bridge = nodes["bridge"].sketch
        assert isinstance(bridge, Bridge)
        await until(lambda: bridge.state == "connected", "connected")
        await broker.apub("devices/blob", "", "-f", str(binary))
        await broker.apub("devices//x", "1")
        await broker.apub("devices/ok", "1")
        await until(lambda: bridge.received == 1 and bridge.dropped == 2, "two dropped, one taken")
    finally:
        await stop_circuit(nodes)
    said = lines(caplog)
    assert said[0] == r"dropped devices/blob: its payload is not UTF-8 text: b'\xff\xfe\n\x00[ bridge ] forged'"
    assert said[1].startswith("dropped a message from MQTT: invalid topic 'devices//x': a level is empty")
    assert all("\n" not in line for line in said)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"url": "mqtt://u:pw@127.0.0.1:1883"},
            "the url must not hold a password; put it in the environment variable MQTT_PASSWORD instead",
        ),
        ({"url": "http://127.0.0.1"}, "url must be mqtt://HOST[:PORT] or mqtts://HOST[:PORT], not 'http://127.0.0.1'"),
        ({"qos": 3}, "qos must be 0, 1 or 2, not 3"),
        ({"out": ["a/#/b"]}, "invalid pattern 'a/#/b': '#' may only stand last"),
        ({"url": "mqtts://127.0.0.1", "ca": "nowhere.pem"}, "ca 'nowhere.pem': no such file"),
        ({"colour": "red"}, "takes no parameter 'colour'"),
    ],
)
async def test_bad_parameters_are_one_line_at_the_node(params: dict[str, Any], message: str):
    """Refused at start, naming the node: a password in the URL, a bad scheme, qos, pattern, CA file, parameter."""
    grid = build_grid({"bridge": {"sketch": "mqtt", "params": params}})
    with pytest.raises(GridError) as caught:
        await Node(Bridge, "bridge", grid).open()
    assert str(caught.value).startswith(f"<memory>: node 'bridge': {message}")
    assert "pw@" not in str(caught.value)


async def test_without_aiomqtt_the_sketch_imports_and_the_node_says_what_to_install(monkeypatch: pytest.MonkeyPatch):
    """sketches.mqtt imports without aiomqtt; a node running it fails at start with the one line to fix it."""
    monkeypatch.setitem(sys.modules, "aiomqtt", None)  # what `import aiomqtt` sees where it is not installed
    grid = build_grid({"bridge": {"sketch": "mqtt", "params": {}}})
    with pytest.raises(GridError) as caught:
        await Node(Bridge, "bridge", grid).open()
    assert str(caught.value) == f"<memory>: node 'bridge': {MISSING}"


def test_killing_the_bridge_process_makes_the_broker_say_offline(broker: Broker, tmp_path: Path):
    """SIGKILL of a real ./arduino.py bridge: the will, `offline` retained, reaches a subscriber; status showed it connected."""
    (port,) = free_ports(1)
    grid = write_grid(
        tmp_path,
        f"nodes:\n  bridge: {{sketch: mqtt, port: {port}, params: {{url: '{broker.url}', out: ['#']}}}}\n",
    )
    state = broker.sub("arduino-mesh/$state/#")
    bridge = arduino("--grid", grid, "bridge")
    bridge.expect(rf"connected to {re.escape(broker.url)} as arduino-mesh-bridge")
    state.expect(r"^arduino-mesh/\$state/bridge online$")
    status = run_arduino("--grid", grid, "status")
    assert f"bridge: broker={broker.url} state=connected sent=0 received=0 dropped=0 queued=0" in status.stdout
    bridge.signal(signal.SIGKILL)
    bridge.wait()
    state.expect(r"^arduino-mesh/\$state/bridge offline$")
    late = broker.sub("arduino-mesh/$state/#")  # retained: a subscriber that comes later sees it at once
    late.expect(r"^arduino-mesh/\$state/bridge offline$")


async def test_hook_aiomqtt_keeps_its_paho_client_for_manual_acks():
    """sketches.mqtt._manual_acks reaches paho through aiomqtt's private ``_client``: pinned here, with the queue_type
    aiomqtt builds its incoming queue from (what bounds the bridge's QoS 0 backlog)."""
    import aiomqtt

    from sketches.mqtt import _Incoming

    made: list[object] = []

    class Recorded(_Incoming):
        def __init__(self, maxsize: int = 0, **kwargs: Any) -> None:
            super().__init__(maxsize, **kwargs)
            made.append(self)

    client = aiomqtt.Client("127.0.0.1", 1, queue_type=lambda maxsize: Recorded(maxsize, bridge=None))  # type: ignore[arg-type]
    paho = client._client
    assert callable(paho.manual_ack_set) and callable(paho.ack)
    assert len(made) == 1 and client._queue is made[0]
