"""MQTT bridge: the mesh's publications out to an MQTT broker, and the broker's messages into the mesh.

```yaml
bridge: {sketch: mqtt, port: 8770, params: {url: "mqtt://127.0.0.1:1883", out: ["#"], in: ["devices/#"]}}
wires:
  - bridge -> clock          # a real button ticks the circuit
```

- Mesh -> MQTT: every publication a pattern of ``out`` matches goes to the broker as
  ``<prefix>/<key>`` (``arduino-mesh/iopin/pin``), at ``qos``, with ``retain``.
- MQTT -> mesh: every message a filter of ``in`` matches is published in the mesh on
  ``<bridge>/<mqtt topic>`` and streamed to every node the bridge is wired to, the MQTT
  topic as the channel. A topic or payload the mesh cannot carry is dropped, with a
  warning (rate-limited).
- No echo loop: the bridge's own keys (``<bridge>/...``) never go out, and MQTT topics
  under ``<prefix>/`` (what it sent) never come in.
- A message sent to the bridge itself (a wire, ``./arduino.py send bridge``) goes to
  ``<prefix>/<bridge>/<channel, or "in">``; its ack is ``sent`` once the broker has it
  (``queued`` while the broker is away).
- Broker down, refusing, or refusing our credentials: one line, then reconnect with
  backoff (50 ms doubling to 2 s); ``./arduino.py status`` shows the broker's state
  (``@reports``). What goes out meanwhile waits in a queue of :data:`QUEUE_MAX` publications
  and :data:`QUEUE_BYTES`, oldest dropped and counted past it. What comes in is bounded too: a
  QoS 1 or 2 message is acknowledged to the broker only once the mesh has it (the broker
  holds the backlog), QoS 0 messages wait within :data:`INCOMING_BYTES`, and past it are
  dropped and counted. A publication leaves the queue only once the broker has
  acknowledged it (QoS 1 and 2): with the default persistent session (a stable client id,
  no clean session), nothing the broker acknowledged is lost, and nothing is lost
  between the bridge and the broker while the bridge lives (a message may arrive twice:
  QoS 1 is at least once).
- Last will: ``<prefix>/$state/<bridge>`` = ``offline``, retained; ``online`` once
  connected; ``offline`` again at a clean stop.
- Credentials come from the environment only (``MQTT_USERNAME``, ``MQTT_PASSWORD``, or
  the variables ``username_env``/``password_env`` name); a password in the URL is refused.
  They are never logged nor shown. ``mqtts://`` verifies the broker against ``ca`` (a
  path relative to the grid's folder), or the system's CAs.

aiomqtt is optional (``pip install 'arduino-mesh[mqtt]'``): this module imports without
it, and a node running the sketch without it fails at start with one line. docs/mqtt.md
has the details.

It runs past 400 lines and stays one module: it is one sketch, both directions of one
bridge, whose bounds (what it holds each way) are read together.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import re
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mesh.errors import MeshError, TopicError
from mesh.throttle import Throttle, escape
from mesh.tls import describe_tls_error
from mesh.topics import check_key, check_pattern, check_topic
from nodes import FactoryLoop, every, reactive, reports

if TYPE_CHECKING:
    import aiomqtt

__all__ = ["INCOMING_BYTES", "MISSING", "PAYLOAD_MAX", "QUEUE_BYTES", "QUEUE_MAX", "WINDOW", "Bridge"]

#: The one line a node gets when it runs this sketch without aiomqtt installed.
MISSING = "the mqtt sketch needs aiomqtt: pip install 'arduino-mesh[mqtt]'"
#: Publications waiting for the broker (down, or slower than the mesh); past it the oldest is dropped and counted...
QUEUE_MAX = 10_000
#: ...and bytes of them.
QUEUE_BYTES = 16 * 2**20
#: Bytes of QoS 0 messages from the broker waiting for the mesh (the bridge slower than a flood): past it, a
#: QoS 0 message is dropped and counted. QoS 1 and 2 messages are acknowledged to the broker only once the
#: mesh has them, so the broker holds the backlog (its own in-flight window bounds what the bridge holds).
INCOMING_BYTES = 4 * 2**20
#: Publications to the broker in flight at once (sent, not yet acknowledged).
WINDOW = 64
#: Bytes of an MQTT payload the bridge brings into the mesh; a larger one is dropped, with a warning.
PAYLOAD_MAX = 256 * 1024
#: Reconnect backoff: the first delay and the cap, in seconds (doubling between).
BACKOFF_FIRST = 0.05
BACKOFF_MAX = 2.0
#: Seconds a stop waits for the broker to take ``offline`` before disconnecting anyway.
STOP_TIMEOUT = 1.0
#: Seconds the client waits for the broker's answer to a connect, a subscribe or a publish.
ANSWER_TIMEOUT = 10.0
#: Seconds between two lines saying the broker is still down for the same reason.
DOWN_EVERY = 60.0


def _aiomqtt() -> Any:
    try:
        import aiomqtt
    except ImportError:
        raise ValueError(MISSING) from None
    return aiomqtt


class _Incoming(asyncio.Queue):  # aiomqtt's queue_type: a queue of its messages
    """What aiomqtt queues for the bridge: QoS 0 within INCOMING_BYTES (past it dropped and counted, never raising,
    so aiomqtt logs nothing per message); QoS 1 and 2 always (the broker's in-flight window bounds them)."""

    def __init__(self, maxsize: int = 0, *, bridge: Bridge) -> None:
        super().__init__(maxsize)
        self.bridge = bridge
        self.bytes = 0

    def put_nowait(self, message: Any) -> None:
        size = len(message.payload) if isinstance(message.payload, (bytes, bytearray)) else 64
        if not message.qos and self.bytes + size > INCOMING_BYTES:
            self.bridge.dropped_incoming(message.topic.value)
            return
        self.bytes += size
        super().put_nowait(message)

    def get_nowait(self) -> Any:
        message = super().get_nowait()
        self.bytes -= len(message.payload) if isinstance(message.payload, (bytes, bytearray)) else 64
        return message


def _manual_acks(client: aiomqtt.Client) -> Callable[[Any], None]:
    """Acknowledge QoS 1 and 2 messages ourselves, once handled: paho's ``manual_ack_set`` and ``ack``, reached through
    aiomqtt's private ``_client`` (aiomqtt has no public way; tests/sketches/test_mqtt.py pins it). The broker then
    holds what the bridge has not taken, within its own limits, instead of the bridge holding it all in memory."""
    paho = client._client
    paho.manual_ack_set(True)

    def ack(message: Any) -> None:
        if message.qos:
            paho.ack(message.mid, message.qos)

    return ack


@dataclass
class _Out:
    """One publication waiting for the broker."""

    seq: int
    topic: str
    payload: bytes
    done: asyncio.Future[str] | None = field(default=None)


class Bridge(FactoryLoop):
    """Forwards mesh publications to an MQTT broker and brings the broker's messages into the mesh."""

    def setup(
        self,
        url: str = "mqtt://127.0.0.1:1883",
        out: list[str] | tuple[str, ...] | None = None,
        prefix: str = "arduino-mesh",
        qos: int = 1,
        retain: bool = False,
        client_id: str | None = None,
        ca: str | None = None,
        username_env: str = "MQTT_USERNAME",
        password_env: str = "MQTT_PASSWORD",
        **more: Any,
    ) -> None:
        """Connect the mesh to one MQTT broker.

        ``url``: the broker, mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (no password in it)
        ``out``: mesh patterns whose publications go to the broker
        ``in``: MQTT filters whose messages come into the mesh (a param of the grid: in is a Python keyword)
        ``prefix``: the MQTT topic level the mesh's keys go under
        ``qos``: 0, 1 or 2
        ``retain``: what goes out is retained by the broker
        ``client_id``: the MQTT client id (default PREFIX-NODE: stable, so the broker keeps the session)
        ``ca``: CA file for mqtts://, relative to the grid's folder
        ``username_env``: the environment variable holding the user name
        ``password_env``: the environment variable holding the password
        """
        # ``in`` is a Python keyword: it arrives in ``more``, and setup() checks what check_params cannot.
        inbound = more.pop("in", None)
        if more:
            raise TypeError(f"takes no parameter {', '.join(map(repr, more))}")
        for name, value, kind in (("url", url, str), ("prefix", prefix, str), ("retain", retain, bool)):
            if not isinstance(value, kind):
                raise ValueError(f"{name} must be {'true or false' if kind is bool else 'text'}, not {value!r}")
        self.aiomqtt = _aiomqtt()
        parts = urlsplit(url)
        if parts.password is not None:
            raise ValueError(
                f"the url must not hold a password; put it in the environment variable {password_env} instead"
            )
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"url must be mqtt://HOST[:PORT] or mqtts://HOST[:PORT], not {escape(url)!r}")
        try:
            port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        except ValueError as exc:
            raise ValueError(f"url {escape(url)!r}: {exc}") from None
        if qos not in (0, 1, 2) or isinstance(qos, bool):
            raise ValueError(f"qos must be 0, 1 or 2, not {qos!r}")
        self.host = parts.hostname
        self.port = port
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{parts.scheme}://{host}:{port}"  # what is shown: never the credentials
        self.out_patterns = [check_pattern(p) for p in _strings(out, "out")]
        self.in_filters = [check_pattern(p) for p in _strings(inbound, "in")]
        self.prefix = check_topic(prefix)
        self.qos = qos
        self.retain = retain
        self.client_id = client_id or f"{prefix.replace('/', '-')}-{self.name}"
        self.username = os.environ.get(username_env) or parts.username or None
        self.password = os.environ.get(password_env) or None
        self.tls: ssl.SSLContext | None = None
        #: Whom a refused broker certificate is "not signed by", in the bridge's one line and its status.
        self.signer = f"the CA given in ca ({escape(str(ca))})" if ca is not None else "a CA this system trusts"
        if parts.scheme == "mqtts":
            cafile = None
            if ca is not None:
                found = Path(self.grid.path).parent / ca
                if not found.is_file():
                    raise ValueError(f"ca {ca!r}: no such file ({found})")
                cafile = str(found)
            self.tls = ssl.create_default_context(cafile=cafile)
        elif ca is not None:
            raise ValueError("ca is for mqtts:// urls; this url is mqtt://")
        self.state_topic = f"{self.prefix}/$state/{self.name}"
        self.state = "connecting"
        self.sent = 0
        self.received = 0
        self.dropped = 0
        self.queue: deque[_Out] = deque()
        self.queued_bytes = 0
        self._seq = itertools.count()
        self._more = asyncio.Event()
        self._acks: set[asyncio.Future[str]] = set()
        self.throttle = Throttle(self.log)
        self.down_throttle = Throttle(self.log, DOWN_EVERY)

    @reports
    def broker(self) -> dict[str, Any]:
        """The broker's state and the bridge's counters, for ``./arduino.py status``."""
        return {
            "broker": self.url,
            "state": self.state,
            "sent": self.sent,
            "received": self.received,
            "dropped": self.dropped,
            "queued": len(self.queue),
        }

    # -- mesh -> MQTT -------------------------------------------------------------

    def outbound(self, key: str, data: str) -> None:
        """A mesh publication an ``out`` pattern matched: to the broker as ``<prefix>/<key>``; never our own."""
        if key.startswith(f"{self.name}/"):
            return  # it came from MQTT (or from us): back there would be an echo
        self._enqueue(f"{self.prefix}/{key}", data)

    def _enqueue(self, topic: str, text: str, done: asyncio.Future[str] | None = None) -> None:
        payload = text.encode()
        while self.queue and (len(self.queue) >= QUEUE_MAX or self.queued_bytes + len(payload) > QUEUE_BYTES):
            oldest = self.queue.popleft()
            self.queued_bytes -= len(oldest.payload)
            self.dropped += 1
            if oldest.done is not None and not oldest.done.done():
                oldest.done.set_result("dropped")
            self.throttle.warn(
                "full",
                "%d publications (%d bytes) wait for the broker: dropped the oldest (%s)",
                len(self.queue) + 1,
                self.queued_bytes,
                oldest.topic,
            )
        self.queue.append(_Out(next(self._seq), topic, payload, done))
        self.queued_bytes += len(payload)
        self._more.set()

    def dropped_incoming(self, topic: str) -> None:
        """A QoS 0 message from the broker found the bridge's incoming queue full: counted, said now and then."""
        self.dropped += 1
        self.throttle.warn(
            "incoming full",
            "messages from the broker arrive faster than the mesh takes them: dropped QoS 0 %s (%d dropped so far)",
            escape(topic),
            self.dropped,
        )

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        """A message to the bridge goes to the broker on ``<prefix>/<bridge>/<channel or "in">``."""
        topic = f"{self.prefix}/{self.name}/{channel or 'in'}"
        try:
            check_topic(topic)
        except TopicError as exc:
            raise MeshError(f"channel {escape(channel)!r} cannot be an MQTT topic: {exc}") from None
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._enqueue(topic, message, done)
        if self.state != "connected":
            return "queued"
        return await done

    async def _send(self, client: aiomqtt.Client) -> None:
        """Publish what waits, up to WINDOW at once; each leaves the queue once the broker acknowledged it."""
        while True:
            while not self.queue:
                self._more.clear()
                await self._more.wait()
            batch = list(itertools.islice(self.queue, WINDOW))
            await asyncio.gather(
                *(client.publish(item.topic, item.payload, qos=self.qos, retain=self.retain) for item in batch)
            )
            last = batch[-1].seq
            while self.queue and self.queue[0].seq <= last:
                item = self.queue.popleft()
                self.queued_bytes -= len(item.payload)
                self.sent += 1
                if item.done is not None and not item.done.done():
                    item.done.set_result("sent")

    # -- MQTT -> mesh -------------------------------------------------------------

    async def _read(self, client: aiomqtt.Client, ack: Callable[[Any], None]) -> None:
        async for message in client.messages:
            await self.inbound(message.topic.value, message.payload)
            ack(message)  # handled: the broker may send the next (QoS 1 and 2)

    async def inbound(self, topic: str, payload: object) -> None:
        """A broker message an ``in`` filter matched: published on ``<bridge>/<topic>``, streamed to every target."""
        if topic == self.prefix or topic.startswith(f"{self.prefix}/"):
            return  # what we sent: back into the mesh would be an echo
        text = self._carried(topic, payload)
        if text is None:
            self.dropped += 1
            return
        self.received += 1
        await self.publish(topic, text)
        for target in self.targets:
            try:
                futures = await self.post(target, text, channel=topic)
            except MeshError as exc:
                self.throttle.warn(("post", target), "cannot stream %s to %s: %s", escape(topic), target, exc)
                continue
            for future in futures:  # acks on the side: a slow target does not stall the reader
                self._acks.add(future)
                future.add_done_callback(self._acked(target, topic))

    def _acked(self, target: str, topic: str) -> Any:
        def done(future: asyncio.Future[str]) -> None:
            self._acks.discard(future)
            if future.cancelled():
                return
            if (exc := future.exception()) is not None:
                self.throttle.warn(("ack", target), "%s did not take %s: %s", target, escape(topic), exc)

        return done

    def _carried(self, topic: str, payload: object) -> str | None:
        """The payload as mesh text, or None (and a rate-limited warning) if the mesh cannot carry it."""
        if topic.startswith("$"):
            self.throttle.warn("system", "dropped %s: topics starting with '$' are the runtime's", escape(topic))
            return None
        try:
            check_topic(topic)
            check_key(f"{self.name}/{topic}")
        except TopicError as exc:
            self.throttle.warn("topic", "dropped a message from MQTT: %s", escape(str(exc)))
            return None
        if isinstance(payload, (bytes, bytearray)):
            if len(payload) > PAYLOAD_MAX:
                self.throttle.warn(
                    "size",
                    "dropped %s: %d bytes; the bridge carries at most %d",
                    escape(topic),
                    len(payload),
                    PAYLOAD_MAX,
                )
                return None
            try:
                return bytes(payload).decode()
            except UnicodeDecodeError:
                self.throttle.warn(
                    "binary", "dropped %s: its payload is not UTF-8 text: %s", escape(topic), escape(payload[:40])
                )
                return None
        return "" if payload is None else str(payload)

    # -- the connection -------------------------------------------------------------

    def _client(self) -> aiomqtt.Client:
        """A fresh client for one connection (paho keeps nothing of a failed one), same id, persistent session."""
        aiomqtt = self.aiomqtt
        client = aiomqtt.Client(
            self.host,
            self.port,
            username=self.username,
            password=self.password,
            identifier=self.client_id,
            clean_session=False,
            will=aiomqtt.Will(self.state_topic, "offline", qos=1, retain=True),
            tls_context=self.tls,
            timeout=ANSWER_TIMEOUT,
            max_inflight_messages=WINDOW,
            queue_type=functools.partial(_Incoming, bridge=self),
        )
        client.pending_calls_threshold = 2 * WINDOW  # WINDOW publishes in flight is the plan, not a worry
        return client

    @every(BACKOFF_FIRST, times=1)  # once, at start; the node cancels it at stop
    async def connect(self) -> None:
        """Subscribe in the mesh, then stay connected to the broker until the node stops."""
        subscribing = [asyncio.ensure_future(self.subscribe(p, self.outbound)) for p in self.out_patterns]
        try:
            await self._stay_connected()
        finally:
            for task in subscribing:
                task.cancel()

    async def _stay_connected(self) -> None:
        delay = BACKOFF_FIRST
        while True:
            if not self.state.startswith("down"):  # a retry keeps saying why the last try failed
                self.state = "connecting"
            try:
                await self._session()
            except self.aiomqtt.MqttError as exc:
                reason = _reason(exc, self.signer)
                if self.state == "connected":
                    self.log.warning("lost the broker at %s: %s; reconnecting", self.url, reason)
                    delay = BACKOFF_FIRST
                else:
                    self.down_throttle.warn(
                        reason, "broker %s is down: %s; retrying (backoff up to %g s)", self.url, reason, BACKOFF_MAX
                    )
                self.state = f"down: {reason}"
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    async def _session(self) -> None:
        """One connection: ``online``, the ``in`` subscriptions, then read and send until it breaks or we stop."""
        async with self._client() as client:
            await client.publish(self.state_topic, "online", qos=1, retain=True)
            for pattern in self.in_filters:
                await client.subscribe(pattern, qos=self.qos)
            self.state = "connected"
            self.log.info("connected to %s as %s", self.url, self.client_id)
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._read(client, _manual_acks(client)))
                    group.create_task(self._send(client))
            except asyncio.CancelledError:  # the node stops: say so, then disconnect cleanly
                try:
                    await client.publish(self.state_topic, "offline", qos=1, retain=True, timeout=STOP_TIMEOUT)
                except self.aiomqtt.MqttError:
                    pass
                self.state = "stopped"
                raise
            except BaseExceptionGroup as group_error:  # the connection broke under the reader or the sender
                errors = group_error.subgroup(self.aiomqtt.MqttError)
                if errors is None:
                    raise
                raise errors.exceptions[0] from None


def _strings(value: object, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of topic patterns, not {value!r}")
    return list(value)


def _reason(exc: BaseException, signer: str) -> str:
    """One line saying why the broker cannot be used: ``connection refused``, ``not authorised``, a certificate refused..."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):  # aiomqtt keeps it as the context of its MqttError
        line = describe_tls_error(cause, ca=signer, host="the broker's host in url")
        if line is not None:
            return escape(line)
    text = str(exc)
    if cause is not None and text in ("Disconnected during message iteration", "Operation timed out"):
        text = f"{text}: {cause}"
    return escape(re.sub(r"^\[(?:code:\d+|Errno \d+)\] ", "", text).strip() or type(exc).__name__)
