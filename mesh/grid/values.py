"""The checks of single values of a grid: each returns the value, or raises Invalid saying what is wrong.

They know nothing of files and lines: :mod:`mesh.grid.rules` reports an
:class:`Invalid` at the line of the value it checked.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection
from typing import Any

from mesh.constants import MAX_SIZE_RANGE, OUTBOX_RANGE
from mesh.errors import TopicError
from mesh.topics import check_pattern

from .shown import show, shown

__all__ = [
    "BAUD_RANGE",
    "Invalid",
    "check_baud",
    "check_board",
    "check_durable",
    "check_host",
    "check_max_size",
    "check_outbox",
    "check_param_name",
    "check_port",
    "check_serial",
    "check_sketch",
    "check_subscription",
    "check_timeout",
    "check_tls_file",
    "check_token_env",
    "host_ip",
    "not_a_subscription_list",
    "params_not_a_mapping",
]

_LEADING_ZERO = re.compile(r"[-+]?0[0-9_]+")
_DECIMAL = re.compile(r"[-+]?[0-9]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: The serial speeds a board's ``baud`` may name, in bits per second (Arduino's Serial.begin() takes these and more).
BAUD_RANGE = (300, 2_000_000)


class Invalid(Exception):
    """A value check failed; the caller knows the file and line to report."""


def _dotted(text: str) -> bool:
    return all(part.isidentifier() for part in text.split("."))


def check_sketch(node: str, value: Any) -> str:
    """A sketch's name (``blinker``), a ``.py`` path (``./lab/blinker.py``), ``package.module:Class``, or
    Arduino firmware, a path ending in ``.ino`` (``lamp.ino``, ``./firmware/lamp.ino``).

    A ``.py`` path, too, may name its class: ``./lab/two.py:Fast``. Where each is looked
    for is not the rules' business (see :mod:`sketches`).
    """
    if (
        isinstance(value, str)
        and value.endswith(".ino")
        and len(value) > len(".ino")
        and value.strip() == value
        and not any(char in value for char in "\n\r\t\0")
    ):
        return value
    where, sep, cls = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    if not sep:
        where, cls = value, ""
    if (
        isinstance(value, str)
        and value.strip() == value
        and (not sep or cls.isidentifier())
        and (where.endswith(".py") or (_dotted(where) and (sep or "/" not in where)))
        and not any(char in value for char in "\n\r\t")
    ):
        return value
    raise Invalid(
        f"node {node!r}: 'sketch' must be a sketch's name (blinker), a path to a .py file "
        f"(./sketches/blinker.py), module:Class (mypackage.blinker:Blinker) or Arduino firmware (lamp.ino)"
    )


def check_host(node: str, value: Any) -> str:
    if not isinstance(value, str) or not value or any(char.isspace() or char in "[]/" for char in value):
        raise Invalid(f"node {node!r}: 'host' must be a host name or address")
    return value


def host_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``text`` as an IP address (an IPv4-mapped IPv6 one as IPv4; ``localhost`` as 127.0.0.1), or None if it is a name."""
    if text.lower() == "localhost":
        return ipaddress.IPv4Address("127.0.0.1")
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _check_written(node: str, key: str, value: Any, raw: str | None) -> None:
    """The YAML 1.1 traps in how a whole number was written; ``raw`` is its plain text, if any."""
    if raw is None:
        return
    if _LEADING_ZERO.fullmatch(raw):
        number = int(raw.replace("_", ""), 10)
        raise Invalid(f"node {node!r}: {key} {raw!r} has a leading zero, which YAML reads as octal; write {number}")
    if _is_whole(value) and not _DECIMAL.fullmatch(raw):
        # YAML 1.1 also reads 0x1F, 0b11, 8_765 and even 1:30 (sexagesimal) as ints.
        raise Invalid(f"node {node!r}: {key} {raw!r} is not a plain decimal number; write {value}")


def check_port(node: str, value: Any, raw: str | None = None) -> int | None:
    """A port number, or None for no port. ``raw`` is the plain YAML text, if any."""
    _check_written(node, "port", value, raw)
    if value is None:
        return None
    if not _is_whole(value):
        raise Invalid(f"node {node!r}: 'port' must be a whole number, not {shown(value)}")
    if not 0 <= value <= 65535:
        raise Invalid(f"node {node!r}: port {value} is outside 0-65535")
    return value


def check_outbox(node: str, value: Any, raw: str | None = None) -> int:
    """How many unacked messages a link holds. ``raw`` is the plain YAML text, if any."""
    _check_written(node, "outbox", value, raw)
    low, high = OUTBOX_RANGE
    if not _is_whole(value) or not low <= value <= high:
        raise Invalid(f"node {node!r}: 'outbox' must be a whole number from {low} to {high}, not {shown(value)}")
    return value


def check_max_size(node: str, value: Any, raw: str | None = None) -> int:
    """The largest frame in bytes. ``raw`` is the plain YAML text, if any."""
    _check_written(node, "max_size", value, raw)
    low, high = MAX_SIZE_RANGE
    if not _is_whole(value) or not low <= value <= high:
        raise Invalid(
            f"node {node!r}: 'max_size' must be a whole number of bytes from {low} to {high}, not {shown(value)}"
        )
    return value


def check_durable(node: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"node {node!r}: 'durable' must be true or false, not {show(value)}")
    return value


def check_timeout(node: str, value: Any, raw: str | None = None) -> float | None:
    """Seconds one ``loop()`` call may take: a number above 0, or None for no bound. ``raw``: the YAML text."""
    if value is None:
        return None
    if _is_whole(value):
        _check_written(node, "timeout", value, raw)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value < float("inf"):
        raise Invalid(f"node {node!r}: 'timeout' must be a number of seconds above 0, not {shown(value)}")
    return float(value)


def check_serial(node: str, value: Any) -> str:
    """A board's serial port: a device path (``/dev/ttyACM0``), or a URL pyserial-style libraries open (``socket://``)."""
    if not isinstance(value, str) or not value.strip() or value.strip() != value or any(c in value for c in "\n\r\0"):
        raise Invalid(f"node {node!r}: 'serial' must be the board's serial port, like /dev/ttyACM0, not {show(value)}")
    return value


def check_baud(node: str, value: Any, raw: str | None = None) -> int:
    """A board's serial speed in bits per second. ``raw`` is the plain YAML text, if any."""
    _check_written(node, "baud", value, raw)
    low, high = BAUD_RANGE
    if not _is_whole(value) or not low <= value <= high:
        raise Invalid(
            f"node {node!r}: 'baud' must be a whole number of bits per second from {low} to {high:,} "
            f"(what the firmware's Serial.begin() says, 115200 say), not {shown(value)}"
        )
    return value


def check_board(node: str, sketch: Any, serial: Any, baud: Any, key: str) -> None:
    """Whether ``key`` (``serial`` or ``baud``) fits the node: a board over serial runs firmware, and has a port."""
    firmware = isinstance(sketch, str) and sketch.endswith(".ino")
    if key == "serial" and serial is not None and not firmware:
        raise Invalid(
            f"node {node!r}: 'serial' is for a node whose sketch is Arduino firmware running on a real board "
            f"(sketch: lamp.ino), not {show(sketch)}; remove 'serial', or name the board's .ino"
        )
    if key == "baud" and baud is not None and serial is None:
        why = "a simulated firmware's Serial runs at the speed its sketch sets" if firmware else "only a board has one"
        raise Invalid(
            f"node {node!r}: 'baud' goes with 'serial' (the board's port, /dev/ttyACM0): {why}; remove 'baud'"
        )


def check_token_env(value: Any) -> str:
    # The message never shows the value: it may be the token itself, written by mistake.
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        raise Invalid("'auth': 'token_env' must name an environment variable, like MESH_TOKEN")
    return value


def check_tls_file(key: str, value: Any) -> str:
    """A path of the grid's ``tls`` (``cert``, ``key`` or ``ca``): non-empty text, one line."""
    if not isinstance(value, str) or not value.strip() or any(char in value for char in "\n\r\0"):
        raise Invalid(
            f"'tls': {key!r} must be the path of a PEM file (relative to the grid's folder), not {show(value)}"
        )
    return value


def check_param_name(node: str, name: Any) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        raise Invalid(f"node {node!r}: invalid parameter name {show(name)}")
    return name


def check_subscription(node: str, value: Any, seen: Collection[str] = ()) -> str:
    """One topic pattern of a node's ``subscribe``; ``seen`` are the patterns before it."""
    if not isinstance(value, str):
        raise Invalid(f"node {node!r}: a subscription must be a topic pattern (text), not {show(value)}")
    try:
        check_pattern(value)
    except TopicError as exc:
        raise Invalid(f"node {node!r}: {exc}") from None
    if value in seen:
        raise Invalid(f"node {node!r}: pattern {value!r} is listed twice")
    return value


def not_a_subscription_list(node: str) -> str:
    return f"node {node!r}: 'subscribe' must be a list of topic patterns"


def params_not_a_mapping(node: str) -> str:
    return f"node {node!r}: 'params' must be a mapping"


def _is_whole(value: Any) -> bool:
    """True for an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)
