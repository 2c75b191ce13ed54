"""One Redis client's session and the registry clients share (mesh.resp.session, .registry, .commands), pure.

A list stands for the socket and a list for the clock; a recording :class:`Mesh` stands for the
node (the real one is ``nodes.redis``, tested end to end in ``tests/nodes/test_redis.py``).
Redis's own replies are checked there with redis-cli and redis-py; here are the tables of
what the commands answer, our limits, covers, and the registry's inner workings.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import hiredis
import pytest

from mesh.resp.commands import COMMANDS
from mesh.resp.encode import Error, error
from mesh.resp.globs import Glob, compile_glob
from mesh.resp.registry import Config, Registry
from mesh.resp.session import Session


class ListSink:
    """A connection that keeps what is sent; ``backlog`` plays the bytes the client has not read."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.backlog = 0
        self.closed: bool | None = None  # None: open; True: closed after flushing; False: aborted

    def send(self, data: bytes) -> None:
        assert self.closed is None, "sent to a closed connection"
        self.data += data

    def buffered(self) -> int:
        return self.backlog

    def close(self, flush: bool) -> None:
        self.closed = flush

    def replies(self, proto: int = 2) -> list[object]:
        """Everything sent so far, parsed (and forgotten)."""
        reader = hiredis.Reader(notEnoughData=Ellipsis)
        reader.feed(bytes(self.data))
        self.data.clear()
        out = []
        while (reply := reader.gets()) is not Ellipsis:
            out.append(("-", str(reply)) if isinstance(reply, hiredis.ReplyError) else reply)
        return out


@dataclass
class Mesh:
    """The node's side of the seam, recording what the registry told it; a publication reaches the registry
    under the cover the test names, as the node's inbox hands it over."""

    registry: Registry | None = None
    receivers: int = 0
    refuse: bytes = b""
    published: list[tuple[bytes, bytes]] = field(default_factory=list)
    interests: list[tuple[str, bool]] = field(default_factory=list)
    joins: list[tuple[int, bytes, bool, str]] = field(default_factory=list)

    def publish(self, channel: bytes, data: bytes) -> int | Error:
        if self.refuse and channel.startswith(self.refuse):
            return error(b"this node does not publish on '" + channel + b"'")
        self.published.append((channel, data))
        assert self.registry is not None
        return self.receivers + self.registry.deliver(channel, data)

    def interest(self, cover: str, active: bool) -> None:
        self.interests.append((cover, active))

    def joined(self, session: Session, name: bytes, pattern: bool, cover: str) -> None:
        self.joins.append((session.id, name, pattern, cover))


def meshed(mesh: Mesh, config: Config | None = None) -> Registry:
    mesh.registry = Registry(config, mesh)
    return mesh.registry


def client(pubsub: Registry, *lines: bytes, clock: list[float] | None = None) -> tuple[Session, ListSink]:
    sink = ListSink()
    now = clock if clock is not None else [0.0]
    session = Session(pubsub, sink, clock=lambda: now[0])
    for line in lines:
        session.feed(line + b"\r\n")
    return session, sink


# -- the mesh's seam ------------------------------------------------------------------------------------


def test_publish_counts_what_the_mesh_says() -> None:
    mesh = Mesh(receivers=3)
    pubsub = meshed(mesh)
    _, sub = client(pubsub, b"SUBSCRIBE buzzer/sound")
    sub.replies()
    _, pub_sink = client(pubsub, b"PUBLISH buzzer/sound buzz")
    assert pub_sink.replies() == [4]  # 3 in the mesh + 1 here
    assert mesh.published == [(b"buzzer/sound", b"buzz")]
    assert sub.replies() == [[b"message", b"buzzer/sound", b"buzz"]]


def test_the_mesh_refuses_a_key() -> None:
    mesh = Mesh(refuse=b"clock/")
    pubsub = meshed(mesh)
    _, sub = client(pubsub, b"SUBSCRIBE clock/tick")
    sub.replies()
    _, pub = client(pubsub, b"PUBLISH clock/tick 1")
    assert pub.data == b"-ERR this node does not publish on 'clock/tick'\r\n"
    assert sub.replies() == []  # refused: not delivered here either
    assert mesh.published == []


def test_a_registry_alone_is_a_plain_redis_server() -> None:
    pubsub = Registry()
    _, sub = client(pubsub, b"PSUBSCRIBE *")
    sub.replies()
    _, pub = client(pubsub, b"PUBLISH anything x")
    assert pub.replies() == [1]
    assert sub.replies() == [[b"pmessage", b"*", b"anything", b"x"]]


def test_deliver_from_the_mesh_reaches_resp2_and_resp3_clients() -> None:
    pubsub = Registry()
    _, two = client(pubsub, b"SUBSCRIBE iopin/pin", b"PSUBSCRIBE iopin/*")
    _, three = client(pubsub, b"HELLO 3", b"PSUBSCRIBE *pin")
    two.data.clear()
    three.data.clear()
    assert pubsub.deliver(b"iopin/pin", b"1") == 3
    assert bytes(two.data) == (
        b"*3\r\n$7\r\nmessage\r\n$9\r\niopin/pin\r\n$1\r\n1\r\n"
        b"*4\r\n$8\r\npmessage\r\n$7\r\niopin/*\r\n$9\r\niopin/pin\r\n$1\r\n1\r\n"
    )
    assert bytes(three.data) == b">4\r\n$8\r\npmessage\r\n$4\r\n*pin\r\n$9\r\niopin/pin\r\n$1\r\n1\r\n"
    assert pubsub.deliver(b"nobody/listens", b"x") == 0
    assert pubsub.delivered == 3


def test_a_publication_reaches_only_the_subscriptions_of_the_cover_it_came_by() -> None:
    """The inbox hands a key to each matching cover's handler once: each subscription gets it once."""
    pubsub = Registry()
    _, sink = client(pubsub, b"SUBSCRIBE iopin/pin", b"PSUBSCRIBE iopin/*", b"PSUBSCRIBE *")
    sink.replies()
    assert pubsub.covers == {"iopin/pin": 1, "iopin/#": 1, "#": 1}
    assert pubsub.deliver(b"iopin/pin", b"1", "iopin/pin") == 1
    assert pubsub.deliver(b"iopin/pin", b"1", "iopin/#") == 1
    assert pubsub.deliver(b"iopin/pin", b"1", "#") == 1
    assert [reply[0] for reply in sink.replies()] == [b"message", b"pmessage", b"pmessage"]  # type: ignore[index]
    assert pubsub.deliver(b"iopin/pin", b"1", "clock/#") == 0


def test_interest_follows_the_first_and_last_name_of_each_cover() -> None:
    mesh = Mesh()
    pubsub = meshed(mesh)
    a, _ = client(pubsub, b"SUBSCRIBE k/x", b"PSUBSCRIBE k/p*")
    b, _ = client(pubsub, b"SUBSCRIBE k/x", b"PSUBSCRIBE k/q*", b"SUBSCRIBE local")
    assert mesh.interests == [("k/x", True), ("k/#", True)]  # "local" is no mesh key: the node's own clients only
    assert mesh.joins == [
        (a.id, b"k/x", False, "k/x"),
        (a.id, b"k/p*", True, "k/#"),
        (b.id, b"k/x", False, "k/x"),  # each new subscription: the mesh sends it what it gets at once
        (b.id, b"k/q*", True, "k/#"),
    ]
    a.feed(b"UNSUBSCRIBE k/x\r\nPUNSUBSCRIBE\r\n")
    assert len(mesh.interests) == 2  # b still holds both covers
    b.feed(b"RESET\r\n")
    assert mesh.interests[2:] == [("k/x", False), ("k/#", False)]
    c, _ = client(pubsub, b"PSUBSCRIBE z/*")
    c.disconnected()
    assert mesh.interests[4:] == [("z/#", True), ("z/#", False)]
    assert pubsub.channels() == [] and pubsub.numpat() == 0 and pubsub.covers == {}


def test_covers_are_bounded_per_node() -> None:
    pubsub = meshed(Mesh(), Config(max_covers=2))
    session, sink = client(pubsub, b"PSUBSCRIBE a/* a/b*", b"SUBSCRIBE b/c")
    sink.replies()
    session.feed(b"PSUBSCRIBE c/* a/x*\r\n")  # a/x* needs no new cover, c/* does
    assert sink.replies() == [
        (
            "-",
            "ERR too many mesh subscriptions: this node's Redis clients already need 2, 2 at most;"
            " use a pattern that covers more keys",
        )
    ]
    session.feed(b"PSUBSCRIBE a/x* local\r\n")
    assert [reply[0] for reply in sink.replies()] == [b"psubscribe", b"psubscribe"]  # type: ignore[index]


def test_replay_sends_one_subscription_one_message() -> None:
    pubsub = Registry()
    a, a_sink = client(pubsub, b"HELLO 3", b"PSUBSCRIBE k/*")
    a_sink.replies()
    assert pubsub.replay(a, b"k/*", True, b"k/v", b"retained")
    assert bytes(a_sink.data) == b">4\r\n$8\r\npmessage\r\n$3\r\nk/*\r\n$3\r\nk/v\r\n$8\r\nretained\r\n"


# -- our limits -----------------------------------------------------------------------------------------


def test_subscriptions_per_client_all_or_nothing() -> None:
    pubsub = Registry(Config(max_subscriptions=3))
    session, sink = client(pubsub, b"SUBSCRIBE a b")
    sink.replies()
    session.feed(b"PSUBSCRIBE x* y*\r\n")
    assert sink.replies() == [("-", "ERR too many subscriptions: 3 channels and patterns per client at most")]
    assert session.subscriptions == 2
    session.feed(b"SUBSCRIBE a b c a\r\n")  # a and b are held already: one new
    assert [r[2] for r in sink.replies()] == [2, 2, 3, 3]  # type: ignore[index]


def test_name_lengths() -> None:
    pubsub = Registry(Config(max_channel_len=8, max_pattern_len=4))
    session, sink = client(pubsub, b"SUBSCRIBE 123456789", b"PSUBSCRIBE 12345", b"PUBSUB CHANNELS 12345")
    assert [r[1] for r in sink.replies()] == [  # type: ignore[index]
        "ERR channel too long: 9 bytes, 8 at most",
        "ERR pattern too long: 5 bytes, 4 at most",
        "ERR pattern too long: 5 bytes, 4 at most",
    ]
    assert session.subscriptions == 0


def test_output_hard_limit_closes_the_subscriber_at_once() -> None:
    pubsub = Registry(Config(output_hard_limit=1000, output_soft_limit=0))
    slow, slow_sink = client(pubsub, b"SUBSCRIBE k")
    _, fast_sink = client(pubsub, b"SUBSCRIBE k")
    slow_sink.backlog = 990  # it does not read
    assert pubsub.deliver(b"k", b"0123456789") == 1  # its frame would reach 1000: it is closed instead
    assert slow_sink.closed is False  # aborted: what it had not read is dropped, as Redis does
    assert slow.closed and "hard limit" in slow.close_reason
    assert slow.subscriptions == 0 and pubsub.numsub(b"k") == 1
    assert fast_sink.replies()[-1] == [b"message", b"k", b"0123456789"]
    slow.feed(b"PING\r\n")  # a closed session ignores what still comes


def test_output_soft_limit_closes_after_its_seconds() -> None:
    now = [100.0]
    pubsub = Registry(Config(output_hard_limit=0, output_soft_limit=100, output_soft_seconds=60))
    slow, sink = client(pubsub, b"SUBSCRIBE k", clock=now)
    sink.backlog = 200
    assert pubsub.deliver(b"k", b"x") == 1  # over the soft limit: the clock starts
    now[0] = 150.0
    sink.backlog = 50
    assert pubsub.deliver(b"k", b"x") == 1  # back under it: the clock stops
    sink.backlog = 200
    now[0] = 160.0
    assert pubsub.deliver(b"k", b"x") == 1  # over again, from 160
    now[0] = 220.0
    assert pubsub.deliver(b"k", b"x") == 1  # 60 s: not more than 60 yet (Redis: elapsed > seconds)
    now[0] = 220.5
    assert pubsub.deliver(b"k", b"x") == 0
    assert slow.closed and "soft limit" in slow.close_reason


# -- commands beyond Redis 7.0 or worded by us ----------------------------------------------------------


def test_client_setinfo_as_redis_7_2() -> None:
    session, sink = client(
        Registry(),
        b"CLIENT SETINFO LIB-NAME redis-py",
        b"CLIENT SETINFO lib-ver 8.2.0",
        b"CLIENT SETINFO lib-foo x",
        b'CLIENT SETINFO LIB-NAME "a b"',
        b"CLIENT SETINFO LIB-NAME",
    )
    assert sink.replies() == [
        b"OK",
        b"OK",
        ("-", "ERR Unrecognized option 'lib-foo'"),
        ("-", "ERR LIB-NAME cannot contain spaces, newlines or special characters."),
        ("-", "ERR wrong number of arguments for 'client|setinfo' command"),
    ]
    assert (session.lib_name, session.lib_ver) == (b"redis-py", b"8.2.0")


def test_client_id_and_hello_id() -> None:
    pubsub = Registry()
    a, a_sink = client(pubsub, b"CLIENT ID", b"HELLO 3")
    b, b_sink = client(pubsub, b"CLIENT ID")
    first, hello = a_sink.replies()
    assert first == a.id and hello[b"id"] == a.id  # type: ignore[index]
    assert b_sink.replies() == [b.id] and b.id == a.id + 1


def test_help_lines() -> None:
    _, sink = client(Registry(), b"pubsub help", b"CLIENT HELP")
    pubsub_help, client_help = sink.replies()
    assert pubsub_help[0] == b"PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"  # type: ignore[index]
    assert pubsub_help[-2:] == [b"HELP", b"    Prints this help."]  # type: ignore[index]
    assert b"SETINFO <option> <value>" in client_help  # type: ignore[operator]


def test_every_command_has_a_handler() -> None:
    for command in COMMANDS.values():
        for sub in (command.subcommands or {}).values():
            assert sub.handler is not None and sub.name.startswith(command.name + "|")
        assert (command.handler is None) == (command.subcommands is not None)


def test_mesh_keys_and_messages_are_bytes_both_ways() -> None:
    pubsub = Registry()
    _, sink = client(pubsub, b"SUBSCRIBE caf\xc3\xa9")
    sink.replies()
    pubsub.deliver("café".encode(), b"\x00\xff")
    assert sink.replies() == [[b"message", "café".encode(), b"\x00\xff"]]


# -- the registry ---------------------------------------------------------------------------------------


def test_patterns_tried_only_where_their_prefix_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    pubsub = Registry(Config(max_covers=2000))
    for i in range(1000):
        client(pubsub, b"PSUBSCRIBE k%d/*" % i)
    client(pubsub, b"PSUBSCRIBE *sound")
    calls = []
    original = Glob.match

    def counting(self: Glob, string: bytes) -> bool:
        calls.append(self.pattern)
        return original(self, string)

    monkeypatch.setattr(Glob, "match", counting)
    assert pubsub.deliver(b"k5/sound", b"x") == 2
    assert sorted(calls) == [b"*sound", b"k5/*"]  # 2 of 1,001 patterns tried
    calls.clear()
    assert pubsub.deliver(b"k5/sound", b"x") == 2
    assert calls == []  # remembered for that channel
    client(pubsub, b"PSUBSCRIBE k5/s*")  # a new pattern: what was remembered is forgotten
    assert pubsub.deliver(b"k5/sound", b"x") == 3


def test_index_agrees_with_trying_every_pattern() -> None:
    rng = random.Random(7)
    alphabet = b"ab/*?[]^-\\"
    pubsub = Registry(Config(max_subscriptions=10_000, max_covers=10_000))
    patterns = {bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 6))) for _ in range(400)}
    holders = []
    for pattern in patterns:
        session, _ = client(pubsub)
        session.execute([b"PSUBSCRIBE", pattern])
        holders.append(session)
    for session in holders[::3]:  # some leave: the index must forget them
        session.disconnected()
    left = {pattern for session in holders if not session.closed for pattern in session.patterns}
    for _ in range(500):
        channel = bytes(rng.choice(b"ab/") for _ in range(rng.randint(1, 6)))
        expected = {pattern for pattern in left if compile_glob(pattern).match(channel)}
        assert {entry.glob.pattern for entry in pubsub._matching(channel)} == expected


def test_delivery_order_channel_first_then_patterns_in_subscription_order() -> None:
    pubsub = Registry()
    session, sink = client(pubsub, b"PSUBSCRIBE a*", b"PSUBSCRIBE *", b"SUBSCRIBE ab", b"PSUBSCRIBE ?b")
    sink.replies()
    assert pubsub.deliver(b"ab", b"x") == 4
    assert [r[0] for r in sink.replies()] == [b"message", b"pmessage", b"pmessage", b"pmessage"]  # type: ignore[index]
    assert session.subscriptions == 4


def test_sessions_are_forgotten() -> None:
    pubsub = Registry()
    a, _ = client(pubsub, b"PING")
    client(pubsub, b"QUIT")
    assert set(pubsub.sessions) == {a.id}
    a.disconnected()
    assert pubsub.sessions == {}


def test_a_budget_of_commands_per_feed() -> None:
    """feed() runs at most its budget of whole commands and says when some are left; feed(b"") runs the next ones."""
    session, sink = client(Registry())
    assert session.feed(b"PING\r\n" * 5, 2) is True
    assert sink.replies() == [b"PONG", b"PONG"]
    assert session.feed(b"", 2) is True
    assert session.feed(b"", 2) is False
    assert sink.replies() == [b"PONG"] * 3
    assert session.feed(b"PING\r\nQUIT\r\nPING\r\n", 10) is False
    assert sink.replies() == [b"PONG", b"OK"] and sink.closed is True


# -- the commands' replies, Redis 7.0's words (checked against redis-server in the prototype's comparison) ------

Said = list[object]

REPLIES: list[tuple[str, list[bytes], Said]] = [
    ("select", [b"SELECT 0", b"SELECT x", b"SELECT 99999999999", b"SELECT 1"], [
        b"OK",
        ("-", "ERR value is not an integer or out of range"),
        ("-", "ERR value is out of range, value must between -2147483648 and 2147483647"),
        ("-", "ERR DB index is out of range"),
    ]),
    ("auth without a password", [b"AUTH x", b"AUTH a b c", b"AUTH default anything"], [
        ("-", "ERR AUTH <password> called without any password configured for the default user."
              " Are you sure your configuration is correct?"),
        ("-", "ERR syntax error"),
        b"OK",
    ]),
    ("hello", [b"HELLO x", b"HELLO 4", b"HELLO 3 FOO", b'HELLO 2 SETNAME "a b"', b"HELLO 2 SETNAME me"], [
        ("-", "ERR Protocol version is not an integer or out of range"),
        ("-", "NOPROTO unsupported protocol version"),
        ("-", "ERR Syntax error in HELLO option 'FOO'"),
        ("-", "ERR Client names cannot contain spaces, newlines or special characters."),
        [b"server", b"redis", b"version", b"7.0.15", b"proto", 2, b"id", 1, b"mode", b"standalone",
         b"role", b"master", b"modules", []],
    ]),
    ("client", [b"CLIENT GETNAME", b"CLIENT SETNAME me", b"CLIENT GETNAME", b'CLIENT SETNAME "a b"', b"CLIENT FOO",
                b"CLIENT"], [
        None,
        b"OK",
        b"me",
        ("-", "ERR Client names cannot contain spaces, newlines or special characters."),
        ("-", "ERR unknown subcommand 'FOO'. Try CLIENT HELP."),
        ("-", "ERR wrong number of arguments for 'client' command"),
    ]),
    ("subscribed context", [b"SUBSCRIBE n/a", b"ECHO x", b"PING", b"RESET", b"ECHO x"], [
        [b"subscribe", b"n/a", 1],
        ("-", "ERR Can't execute 'echo': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed"
              " in this context"),
        [b"pong", b""],
        b"RESET",
        b"x",
    ]),
    ("unsubscribe nothing", [b"UNSUBSCRIBE", b"PUNSUBSCRIBE"], [[b"unsubscribe", None, 0], [b"punsubscribe", None, 0]]),
    ("arity and unknown", [b"PUBLISH x", b"ECHO", b"FOO bar"], [
        ("-", "ERR wrong number of arguments for 'publish' command"),
        ("-", "ERR wrong number of arguments for 'echo' command"),
        ("-", "ERR unknown command 'FOO', with args beginning with: 'bar' "),
    ]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "lines", "replies"), REPLIES, ids=[case[0] for case in REPLIES])
def test_replies(name: str, lines: list[bytes], replies: Said) -> None:
    _, sink = client(Registry(), *lines)
    assert sink.replies() == replies


def test_auth_and_hello_with_a_password() -> None:
    pubsub = Registry(Config(password=b"pw"))
    session, sink = client(pubsub, b"HELLO 3", b"HELLO 3 AUTH default nope", b"AUTH someone pw", b"PING")
    assert sink.replies() == [
        ("-", "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH"
              " <user> <pass> option can be used to authenticate the client and select the RESP protocol version"
              " at the same time"),
        ("-", "WRONGPASS invalid username-password pair or user is disabled."),
        ("-", "WRONGPASS invalid username-password pair or user is disabled."),
        ("-", "NOAUTH Authentication required."),
    ]  # fmt: skip
    session.feed(b"HELLO 3 AUTH default pw SETNAME watcher\r\nQUIT\r\n")
    hello, ok = sink.replies()
    assert hello[b"proto"] == 3 and session.name == b"watcher" and ok == b"OK"  # type: ignore[index]
    assert sink.closed is True


def test_pubsub_introspection() -> None:
    pubsub = Registry()
    client(pubsub, b"SUBSCRIBE a/1 b/1", b"PSUBSCRIBE a/* a/*")
    _, sink = client(pubsub, b"PUBSUB CHANNELS a*", b"PUBSUB NUMSUB a/1 z", b"PUBSUB NUMPAT", b"PUBSUB FOO a b")
    assert sink.replies() == [
        [b"a/1"],
        [b"a/1", 1, b"z", 0],
        1,
        ("-", "ERR unknown subcommand 'FOO'. Try PUBSUB HELP."),
    ]
