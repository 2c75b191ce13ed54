"""The commands a Redis client may send a node, pure: each one's arity, flags and handler, with Redis's replies. No I/O.

Served (Redis 7.0's semantics and wording, ``docs/redis.md`` has examples): PING, ECHO,
HELLO [2|3] [AUTH user pass] [SETNAME name], AUTH [user] pass, QUIT, RESET, SELECT 0,
CLIENT ID|GETNAME|SETNAME|SETINFO|HELP, SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE,
PUBLISH, PUBSUB CHANNELS|NUMSUB|NUMPAT|HELP. Anything else is an unknown command, and the
connection is kept. A handler gets the :class:`~mesh.resp.session.Session` and the command's
arguments, and returns the reply, or :data:`SENT` when it sent its replies itself (SUBSCRIBE:
one per channel). About 400 lines, one module: a command's handler and its line in the table
read best side by side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from .encode import Error, Push, Reply, Simple, error
from .parse import parse_int

if TYPE_CHECKING:
    from .session import Session

__all__ = ["COMMANDS", "SENT", "Command", "Sent", "arity_error", "cstr", "unknown_command"]


class Sent:
    """What a handler returns when it sent its replies itself (SUBSCRIBE: one per channel), or none (POST)."""

    __slots__ = ()


#: The one Sent: distinct from None, which is a reply (the null bulk).
SENT: Final = Sent()

Handler = Callable[["Session", list[bytes]], "Reply | Sent"]


@dataclass(slots=True)
class Command:
    """A command: its full name (``client|setname``), Redis's arity (negative: at least), how it may run."""

    name: str
    arity: int
    handler: Handler | None = None
    #: Runs before AUTH (Redis's "no-auth" flag: AUTH, HELLO, QUIT, RESET).
    no_auth: bool = False
    #: Runs while a RESP2 client is subscribed: (P)SUBSCRIBE, (P)UNSUBSCRIBE, PING, QUIT, RESET.
    in_subscribed: bool = False
    #: A container (CLIENT, PUBSUB): its subcommands by lower-case name.
    subcommands: dict[bytes, Command] | None = None
    #: The lines of its HELP (containers).
    help: tuple[str, ...] = ()


_WRONGPASS: Final = Error(b"WRONGPASS invalid username-password pair or user is disabled.")
_OK: Final = Simple(b"OK")
_NAME_CHARS: Final = frozenset(range(0x21, 0x7F))  # '!'..'~': what CLIENT LIST can show split by spaces


def cstr(arg: bytes) -> bytes:
    """``arg`` as C's ``%s`` prints it: up to its first NUL."""
    nul = arg.find(b"\0")
    return arg if nul < 0 else arg[:nul]


def unknown_command(argv: list[bytes]) -> Error:
    """Redis 7's wording: the name and the first arguments quoted, 128 bytes of each at most, then of all."""
    args = b""
    for arg in argv[1:]:
        if len(args) >= 128:
            break
        args += b"'" + cstr(arg)[: 128 - len(args)] + b"' "
    return error(b"unknown command '" + cstr(argv[0])[:128] + b"', with args beginning with: " + args)


def arity_error(name: str) -> Error:
    return error(f"wrong number of arguments for '{name}' command")


# -- the handlers ---------------------------------------------------------------------------------------


def _ping(s: Session, argv: list[bytes]) -> Reply:
    if len(argv) > 2:
        return arity_error("ping")
    if s.proto == 2 and (s.channels or s.patterns):
        return [b"pong", argv[1] if len(argv) == 2 else b""]  # Redis's subscribed RESP2 PING
    return argv[1] if len(argv) == 2 else Simple(b"PONG")


def _echo(s: Session, argv: list[bytes]) -> Reply:
    return argv[1]


def _quit(s: Session, argv: list[bytes]) -> Sent:
    s.send(_OK)
    s.close("QUIT", flush=True)
    return SENT


def _reset(s: Session, argv: list[bytes]) -> Reply:
    # Redis's clearClientConnectionState: RESP2, the default user, no subscription (and no reply for them), no name.
    s.proto = 2
    s.authenticated = s.registry.config.password is None
    s.drop_subscriptions()
    s.name = None
    return Simple(b"RESET")


def _select(s: Session, argv: list[bytes]) -> Reply:
    index = parse_int(argv[1])
    if index is None:
        return error("value is not an integer or out of range")
    if not -(2**31) <= index < 2**31:
        return error("value is out of range, value must between -2147483648 and 2147483647")
    if index != 0:
        return error("DB index is out of range")  # one database: the mesh's keys
    return _OK


def _auth(s: Session, argv: list[bytes]) -> Reply:
    if len(argv) > 3:
        return error("syntax error")
    if len(argv) == 2:
        if s.registry.config.password is None:
            return error(
                "AUTH <password> called without any password configured for the default user. "
                "Are you sure your configuration is correct?"
            )
        user, password = b"default", argv[1]
    else:
        user, password = argv[1], argv[2]
    if not s.authenticate(user, password):
        return _WRONGPASS
    s.authenticated = True
    return _OK


def _valid_name(name: bytes) -> bool:
    return all(c in _NAME_CHARS for c in name)


_NAME_ERROR: Final = "Client names cannot contain spaces, newlines or special characters."


def _hello(s: Session, argv: list[bytes]) -> Reply:
    version = 0
    j = 1
    if len(argv) >= 2:
        parsed = parse_int(argv[1])
        if parsed is None:
            return error("Protocol version is not an integer or out of range")
        if parsed < 2 or parsed > 3:
            return error("-NOPROTO unsupported protocol version")
        version = parsed
        j = 2
    while j < len(argv):
        more = len(argv) - 1 - j
        option = argv[j].lower()
        if option == b"auth" and more >= 2:
            if not s.authenticate(argv[j + 1], argv[j + 2]):
                return _WRONGPASS
            s.authenticated = True
            j += 3
        elif option == b"setname" and more >= 1:
            if not _valid_name(argv[j + 1]):
                return error(_NAME_ERROR)
            s.name = argv[j + 1] or None
            j += 2
        else:
            return error(b"Syntax error in HELLO option '" + cstr(argv[j]) + b"'")
    if not s.authenticated:
        return error(
            "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH "
            "<user> <pass> option can be used to authenticate the client and select the RESP protocol version "
            "at the same time"
        )
    if version:
        s.proto = version
    config = s.registry.config
    return {
        b"server": config.server,
        b"version": config.version,
        b"proto": s.proto,
        b"id": s.id,
        b"mode": b"standalone",
        b"role": b"master",
        b"modules": [],
    }


def _client_id(s: Session, argv: list[bytes]) -> Reply:
    return s.id


def _client_getname(s: Session, argv: list[bytes]) -> Reply:
    return s.name


def _client_setname(s: Session, argv: list[bytes]) -> Reply:
    if not _valid_name(argv[2]):
        return error(_NAME_ERROR)
    s.name = argv[2] or None
    return _OK


def _client_setinfo(s: Session, argv: list[bytes]) -> Reply:
    # Redis 7.2's CLIENT SETINFO (7.0 has none): redis-py sends LIB-NAME and LIB-VER on connect and ignores errors.
    attribute, value = argv[2], argv[3]
    if attribute.lower() not in (b"lib-name", b"lib-ver"):
        return error(b"Unrecognized option '" + cstr(attribute) + b"'")
    if not _valid_name(value):
        return error(cstr(attribute) + b" cannot contain spaces, newlines or special characters.")
    if attribute.lower() == b"lib-name":
        s.lib_name = value or None
    else:
        s.lib_ver = value or None
    return _OK


def _help(command: Command) -> Handler:
    def handler(s: Session, argv: list[bytes]) -> Reply:
        head = cstr(argv[0]).upper() + b" <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
        lines = [Simple(head), *(Simple(line.encode()) for line in command.help)]
        return [*lines, Simple(b"HELP"), Simple(b"    Prints this help.")]

    return handler


def _check_names(s: Session, names: list[bytes], *, patterns: bool) -> Error | None:
    """Our bounds on a (P)SUBSCRIBE (Redis has none): all of it is refused, or none of it."""
    config = s.registry.config
    longest = config.max_pattern_len if patterns else config.max_channel_len
    held = s.patterns if patterns else s.channels
    for name in names:
        if len(name) > longest:
            what = "pattern" if patterns else "channel"
            return error(f"{what} too long: {len(name)} bytes, {longest} at most")
    new = {name for name in names if name not in held}
    if s.subscriptions + len(new) > config.max_subscriptions:
        return error(f"too many subscriptions: {config.max_subscriptions} channels and patterns per client at most")
    covers = s.registry.new_covers(list(new), patterns)
    if covers and len(s.registry.covers) + covers > config.max_covers:
        return error(
            f"too many mesh subscriptions: this node's Redis clients already need {len(s.registry.covers)},"
            f" {config.max_covers} at most; use a pattern that covers more keys"
        )
    return None


def _subscribe(s: Session, argv: list[bytes]) -> Reply | Sent:
    refused = _check_names(s, argv[1:], patterns=False)
    if refused is not None:
        return refused
    for channel in argv[1:]:
        new = channel not in s.channels
        s.channels[channel] = None
        s.send(Push([b"subscribe", channel, s.subscriptions]))  # before what the subscription brings (retained)
        if new:
            s.registry.add_channel(s, channel)
    return SENT


def _psubscribe(s: Session, argv: list[bytes]) -> Reply | Sent:
    refused = _check_names(s, argv[1:], patterns=True)
    if refused is not None:
        return refused
    for pattern in argv[1:]:
        new = pattern not in s.patterns
        s.patterns[pattern] = None
        s.send(Push([b"psubscribe", pattern, s.subscriptions]))
        if new:
            s.registry.add_pattern(s, pattern)
    return SENT


def _unsubscribe(s: Session, argv: list[bytes]) -> Sent:
    names = argv[1:] or list(s.channels)
    if not names:
        s.send(Push([b"unsubscribe", None, s.subscriptions]))  # nothing to leave: still one reply
    for channel in names:
        if channel in s.channels:
            del s.channels[channel]
            s.registry.remove_channel(s, channel)
        s.send(Push([b"unsubscribe", channel, s.subscriptions]))
    return SENT


def _punsubscribe(s: Session, argv: list[bytes]) -> Sent:
    names = argv[1:] or list(s.patterns)
    if not names:
        s.send(Push([b"punsubscribe", None, s.subscriptions]))
    for pattern in names:
        if pattern in s.patterns:
            del s.patterns[pattern]
            s.registry.remove_pattern(s, pattern)
        s.send(Push([b"punsubscribe", pattern, s.subscriptions]))
    return SENT


def _publish(s: Session, argv: list[bytes]) -> Reply:
    return s.registry.publish(argv[1], argv[2])


def _pubsub_channels(s: Session, argv: list[bytes]) -> Reply:
    if len(argv) > 3:
        return _syntax_error(argv)
    if len(argv) == 3 and len(argv[2]) > s.registry.config.max_pattern_len:
        return error(f"pattern too long: {len(argv[2])} bytes, {s.registry.config.max_pattern_len} at most")
    return list(s.registry.channels(argv[2] if len(argv) == 3 else None))


def _pubsub_numsub(s: Session, argv: list[bytes]) -> Reply:
    out: list[Reply] = []
    for channel in argv[2:]:
        out += [channel, s.registry.numsub(channel)]
    return out


def _pubsub_numpat(s: Session, argv: list[bytes]) -> Reply:
    return s.registry.numpat()


def _syntax_error(argv: list[bytes]) -> Error:
    return error(
        b"unknown subcommand or wrong number of arguments for '"
        + cstr(argv[1])[:128]
        + b"'. Try "
        + cstr(argv[0]).upper()
        + b" HELP."
    )


def _table() -> dict[bytes, Command]:
    client = Command(
        "client",
        -2,
        subcommands={},
        help=(
            "GETNAME",
            "    Return the name of the current connection.",
            "ID",
            "    Return the ID of the current connection.",
            "SETINFO <option> <value>",
            "    Set client meta attr. Options are:",
            "    * LIB-NAME: the client lib name.",
            "    * LIB-VER: the client lib version.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
        ),
    )
    pubsub = Command(
        "pubsub",
        -2,
        subcommands={},
        help=(
            "CHANNELS [<pattern>]",
            "    Return the currently active channels matching a <pattern> (default: '*').",
            "NUMPAT",
            "    Return number of subscriptions to patterns.",
            "NUMSUB [<channel> ...]",
            "    Return the number of subscribers for the specified channels, excluding",
            "    pattern subscriptions(default: no channels).",
        ),
    )
    assert client.subcommands is not None and pubsub.subcommands is not None
    client.subcommands.update(
        {
            b"id": Command("client|id", 2, _client_id),
            b"getname": Command("client|getname", 2, _client_getname),
            b"setname": Command("client|setname", 3, _client_setname),
            b"setinfo": Command("client|setinfo", 4, _client_setinfo),
            b"help": Command("client|help", 2, _help(client)),
        }
    )
    pubsub.subcommands.update(
        {
            b"channels": Command("pubsub|channels", -2, _pubsub_channels),
            b"numsub": Command("pubsub|numsub", -2, _pubsub_numsub),
            b"numpat": Command("pubsub|numpat", 2, _pubsub_numpat),
            b"help": Command("pubsub|help", 2, _help(pubsub)),
        }
    )
    commands = [
        Command("ping", -1, _ping, in_subscribed=True),
        Command("echo", 2, _echo),
        Command("hello", -1, _hello, no_auth=True),
        Command("auth", -2, _auth, no_auth=True),
        Command("quit", -1, _quit, no_auth=True, in_subscribed=True),
        Command("reset", 1, _reset, no_auth=True, in_subscribed=True),
        Command("select", 2, _select),
        Command("subscribe", -2, _subscribe, in_subscribed=True),
        Command("unsubscribe", -1, _unsubscribe, in_subscribed=True),
        Command("psubscribe", -2, _psubscribe, in_subscribed=True),
        Command("punsubscribe", -1, _punsubscribe, in_subscribed=True),
        Command("publish", 3, _publish),
        client,
        pubsub,
    ]
    return {command.name.encode(): command for command in commands}


#: Every command served, by lower-case name.
COMMANDS: Final = _table()
