"""One linear pass over a delimited file before it is parsed: its content hash, and its rows and line
lengths checked against the limits, so no parser ever sees a 10 MB line or a ten-million-row file."""

from __future__ import annotations

import codecs
import hashlib
import io
from dataclasses import dataclass
from typing import BinaryIO

from ketreg.landing.limits import LandingLimits

_CHUNK = 1 << 20


@dataclass(frozen=True)
class TextScan:
    sha256: str
    size_bytes: int
    first_line: bytes  # the header line as bytes, without its line end (at most max_line_bytes)
    not_utf8_at: tuple[int, int] | None = None  # (byte, line) of the first byte that is not UTF-8, if asked


def scan_text(handle: BinaryIO, where: str, limits: LandingLimits, utf8: bool = False) -> TextScan:
    """Hash `handle` to its end; raise LimitExceeded at the first line longer than `max_line_bytes` or when
    the lines outnumber `max_rows`. Lines are counted by their line ends (a quoted line break counts too,
    which can only make the bound stricter). With `utf8`, also find the first byte that is not UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")() if utf8 else None
    not_utf8_at: tuple[int, int] | None = None
    digest = hashlib.sha256()
    size = 0
    lines = 0
    run = 0  # bytes since the last line end
    first: bytes | None = None
    head = b""
    while chunk := handle.read(_CHUNK):
        digest.update(chunk)
        if decoder is not None and not_utf8_at is None:
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                not_utf8_at = (size + exc.start, lines + chunk.count(b"\n", 0, exc.start) + 1)
        size += len(chunk)
        breaks = chunk.count(b"\n")
        if first is None:
            head += chunk[: limits.max_line_bytes + 1]
            if b"\n" in head:
                first = head.split(b"\n", 1)[0]
        if breaks == 0:
            run += len(chunk)
            longest, at = run, lines + 1
        else:
            pieces = chunk.split(b"\n")
            lengths = [run + len(pieces[0]), *(len(p) for p in pieces[1:])]
            longest = max(lengths)
            at = lines + 1 + lengths.index(longest)
            run = len(pieces[-1])
        if longest > limits.max_line_bytes:
            raise limits.exceeded(where, f"line {at:,}'s length in bytes", None,
                                  "max_line_bytes")
        lines += breaks
        if lines > limits.max_rows:
            raise limits.exceeded(where, "the number of lines", None, "max_rows")
    if decoder is not None and not_utf8_at is None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            not_utf8_at = (size, lines + 1)
    if first is None:
        first = head[: limits.max_line_bytes]
    return TextScan(digest.hexdigest(), size, first.rstrip(b"\r"), not_utf8_at)


def check_text(data: bytes, where: str, limits: LandingLimits) -> None:
    """The same bounds for a file already read into memory (a mapped site's delimited file)."""
    scan_text(io.BytesIO(data), where, limits)
