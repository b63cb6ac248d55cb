"""Pieces of the one-line error messages: a library's message flattened, a path shown on one line."""

from __future__ import annotations

from os import PathLike

MESSAGE_CHARS = 240  # longest quoted library message
QUOTE_CHARS = 60  # longest quoted value


def one_line(exc: BaseException | str, limit: int = MESSAGE_CHARS) -> str:
    """An exception's message (or a text) on one line: whitespace runs collapsed, cut at `limit` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown(path: str | PathLike) -> str:
    """A path as a message shows it: as is, or quoted (repr) when it holds a newline or another unprintable
    character, so the message stays one line."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def quoted(value: object, limit: int = QUOTE_CHARS) -> str:
    """`repr(value)` cut at `limit` characters: a value from a file, quoted in a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
