"""How nodes log: one line per event, ``[ iopin ] message``, with secrets kept out.

Libraries log, applications configure: :func:`configure_logging` is for a program that
runs nodes (``arduino.py``); the nodes themselves only log to ``mesh.<name>``.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["REDACT", "NodeFormatter", "Redact", "configure_logging"]


class NodeFormatter(logging.Formatter):
    """``[ iopin ] message``; warnings and errors say so."""

    def format(self, record: logging.LogRecord) -> str:
        who = record.name[5:] if record.name.startswith("mesh.") else record.name
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        line = f"[ {who} ] {level}{record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class Redact(logging.Filter):
    """Keep secrets out of every log line (the mesh's token, in a header or a query)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = record.getMessage()
            for secret in self.secrets:
                text = text.replace(secret, "***")
            record.msg, record.args = text, None
        return True


REDACT = Redact()


def configure_logging(level: str) -> None:
    """Log lines to stderr, one per event, as they happen."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(NodeFormatter())
    handler.addFilter(REDACT)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # The library's own chatter (retries, handshakes, every frame) is ours to say; with
    # --log-level debug it says its handshakes, not each frame.
    logging.getLogger("websockets").setLevel(logging.INFO if level == "debug" else logging.WARNING)
    logging.getLogger("asyncio").setLevel(logging.INFO)
