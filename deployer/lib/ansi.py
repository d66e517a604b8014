"""ANSI colours in build output (npm, pytest, cargo...), as spans a page can colour: only SGR colour and bold
are kept; every other escape sequence and control character is dropped, so a branch's output can neither
move a reader's cursor nor hide text. Hand-written: the libraries that do this (ansi2html, ansiconv) emit
inline styles or whole documents, and a log line needs a dozen classes."""

from __future__ import annotations

import re
from dataclasses import dataclass

# CSI sequences (colours among them), OSC strings (a window title...), then any other escape.
_SEQUENCE = re.compile(r"\x1b\[([0-9;?]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class Piece:
    text: str
    classes: str  # e.g. "ansi-31 ansi-bold"; "" for plain text


def ansi_pieces(text: str) -> list[Piece]:
    """`text` cut where its colour changes; colour codes read, everything else unprintable dropped."""
    pieces: list[Piece] = []
    colour, bold, start = "", False, 0
    for match in _SEQUENCE.finditer(text):
        _add(pieces, text[start : match.start()], colour, bold)
        start = match.end()
        if match.group(2) != "m":
            continue  # a cursor move, a screen clear...: not for a log
        for code in [int(part) for part in (match.group(1) or "0").split(";") if part.isdigit()] or [0]:
            if code == 0:
                colour, bold = "", False
            elif code == 1:
                bold = True
            elif code == 22:
                bold = False
            elif 30 <= code <= 37 or 90 <= code <= 97:
                colour = f"ansi-{code}"
            elif code == 39:
                colour = ""
    _add(pieces, text[start:], colour, bold)
    return pieces


def _add(pieces: list[Piece], text: str, colour: str, bold: bool) -> None:
    text = _CONTROL.sub("", text)
    classes = " ".join(filter(None, [colour, "ansi-bold" if bold else ""]))
    if text and pieces and pieces[-1].classes == classes:
        pieces[-1] = Piece(pieces[-1].text + text, classes)
    elif text:
        pieces.append(Piece(text, classes))
