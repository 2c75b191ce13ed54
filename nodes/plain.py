"""Plain websocket clients: a browser, ``websocat``, any client that did not ask for the mesh protocol.

The plain protocol is the one a person pokes a node with: one text frame in is one message to
``loop(channel, message)``, the URI path being the channel; one text frame back is the
acknowledgement. A sketch may serve plain clients its own way by overriding
``serve_plain(client)`` (the dashboard streams its feed): it gets a :class:`PlainClient`,
a small API of ours, whatever websockets calls its connections, and :func:`broadcast`
sends one text to many clients without waiting for any.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import broadcast as _broadcast
from websockets.exceptions import ConnectionClosed

__all__ = ["BINARY_REFUSED", "PlainClient", "broadcast", "channel_of", "serve_messages"]

#: What a plain client that sends a binary frame is told (the mesh carries text).
BINARY_REFUSED = "error: binary frames are not supported; send text"


def channel_of(path: str) -> str:
    """The channel named by a request path: ``/pin?x=1`` -> ``pin``, ``/`` -> ``""``."""
    return path.split("?", 1)[0].lstrip("/")


class PlainClient:
    """One plain websocket client of a node, as a sketch's ``serve_plain()`` sees it.

    ``path`` is what it asked for (``/feed?token=...``), ``channel`` the same without its
    query and leading ``/``. Iterating it gives each message it sends (text, or bytes for a
    binary frame) until it goes away; :meth:`send` answers, :meth:`wait_closed` waits for
    it to leave. A client that went away raises nothing: :meth:`send` does nothing then.
    """

    __slots__ = ("_ws", "path")

    def __init__(self, websocket: ServerConnection) -> None:
        self._ws = websocket
        self.path = websocket.request.path if websocket.request is not None else "/"

    @property
    def channel(self) -> str:
        return channel_of(self.path)

    @property
    def remote(self) -> str:
        """``host:port`` of the client, for a log line."""
        address = self._ws.remote_address
        return f"{address[0]}:{address[1]}" if address else "a client"

    async def __aiter__(self) -> AsyncIterator[str | bytes]:
        try:
            async for frame in self._ws:
                yield frame
        except ConnectionClosed:
            return

    async def send(self, text: str) -> None:
        """Send one text frame (nothing if the client has gone)."""
        try:
            await self._ws.send(text)
        except ConnectionClosed:
            pass

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self._ws.close(code, reason)

    async def wait_closed(self) -> None:
        await self._ws.wait_closed()


def broadcast(clients: Iterable[PlainClient], text: str) -> None:
    """Send ``text`` to every one of ``clients`` now, without waiting: one that cannot keep up misses it."""
    _broadcast([client._ws for client in clients], text)


async def serve_messages(client: PlainClient, handle: Callable[[str, str], Awaitable[tuple[bool, str]]]) -> None:
    """The plain protocol: each text frame to ``handle(channel, text)`` (``loop()``), its answer sent back."""
    channel = client.channel
    async for frame in client:
        if isinstance(frame, bytes):
            await client.send(BINARY_REFUSED)
            continue
        ok, ack = await handle(channel, frame)
        await client.send(ack if ok else f"error: {ack}")
