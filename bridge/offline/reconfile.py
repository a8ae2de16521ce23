"""The two files of detail reconciliation (offline.md §10.2): the detail file the institution
uploads (9101) for 3202, and the result file the centre returns (9102).  Both are a zip with
one text member, one record per line, TAB-separated; the column orders are in messages.py.

Written and read as streams: a day may hold 100,000 settlements, so neither side is ever
held whole in memory (zipfile writes/reads the member incrementally).

Choices where the sources differ (all configurable here, defaults from ZS, the production
code the digest cites):
* encoding UTF-8 (ZS writes getBytes("utf-8") and reads UTF_8); GBK is what the DLL channel
  uses (§1.1), so `encoding="gbk"` is accepted for a gateway that wants it;
* empty values are written as the text "null" (RECON-AI; ZS reads "null" back as null);
* line end "\n" (ZsrmQGService.uploadDetailedFile; the other ZS path writes "\r\n" and a
  TAB after every value - the reader accepts both);
* money with exactly two decimals, refunds negative (a refunded settlement may be sent as a
  positive and a negative row, §10.2 [uncertain] - the caller decides which rows to send).
"""
from __future__ import annotations

import codecs
import hashlib
import io
import os
import zipfile
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import IO, Iterable, Iterator, Optional, Union

from bridge.offline.messages import (DETAIL_FILE_COLUMNS, REFD_SETL_NORMAL, REFD_SETL_REFUND,
                                     RESULT_FILE_COLUMNS, RESULT_FILE_MONEY)

NULL_TEXT = "null"
CENT = Decimal("0.01")
PathOrFile = Union[str, "os.PathLike[str]", IO[bytes]]


class ReconFileError(ValueError):
    """A file that does not follow the layout; the message names the line."""


@dataclass(frozen=True)
class DetailRow:
    """One line of the detail file: a settlement (refd_setl_flag 0) or a cancellation (1)."""

    setl_id: str
    mdtrt_id: str
    psn_no: str
    medfee_sumamt: Decimal
    fund_pay_sumamt: Decimal
    acct_pay: Decimal
    refd_setl_flag: str = REFD_SETL_NORMAL


@dataclass
class DetailFileSummary:
    """What was written: the totals 3202 asks for and the bytes to upload."""

    rows: int = 0
    medfee_sumamt: Decimal = Decimal("0.00")
    fund_pay_sumamt: Decimal = Decimal("0.00")
    acct_pay: Decimal = Decimal("0.00")
    size: int = 0
    sha256: str = ""
    member: str = ""


@dataclass(frozen=True)
class ResultRow:
    """One line of the 3202 result file.  stmt_rslt codes are not public (offline.md §13 #4)."""

    psn_no: Optional[str]
    mdtrt_id: Optional[str]
    setl_id: Optional[str]
    msgid: Optional[str]
    stmt_rslt: Optional[str]
    refd_setl_flag: Optional[str]
    memo: Optional[str]
    medfee_sumamt: Optional[Decimal]
    fund_pay_sumamt: Optional[Decimal]
    acct_pay: Optional[Decimal]
    extra: tuple[str, ...] = field(default=())     # columns beyond the known ten, kept


def _money_text(value: Decimal, name: str) -> str:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ReconFileError(f"{name} must be a finite Decimal, got {value!r}")
    if value != value.quantize(CENT):
        raise ReconFileError(f"{name} has more than two decimals: {value}")
    return format(value.quantize(CENT), "f")


def _text(value: Optional[str], name: str) -> str:
    if value is None or value == "":
        return NULL_TEXT
    value = str(value)
    if any(c in value for c in "\t\r\n"):
        raise ReconFileError(f"{name} contains a TAB or line break: {value!r}")
    return value


_DETAIL_MONEY = ("medfee_sumamt", "fund_pay_sumamt", "acct_pay")


def detail_line(row: DetailRow) -> str:
    if row.refd_setl_flag not in (REFD_SETL_NORMAL, REFD_SETL_REFUND):
        raise ReconFileError(f"refd_setl_flag must be 0 or 1, got {row.refd_setl_flag!r}")
    return "\t".join(_money_text(getattr(row, name), name) if name in _DETAIL_MONEY
                     else _text(getattr(row, name), name) for name in DETAIL_FILE_COLUMNS)


class _Counting(io.RawIOBase):
    """A write-only, non-seekable sink that hashes and counts what it passes on (zipfile
    then writes data descriptors instead of seeking back)."""

    def __init__(self, target: IO[bytes]):
        self.target = target
        self.size = 0
        self.digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        b = bytes(b)
        self.target.write(b)
        self.size += len(b)
        self.digest.update(b)
        return len(b)


def _hash_back(fh: IO[bytes], start: int) -> tuple[int, str]:
    end = fh.tell()
    fh.seek(start)
    digest, left = hashlib.sha256(), end - start
    while left:
        chunk = fh.read(min(left, 1 << 20))
        if not chunk:
            break
        digest.update(chunk)
        left -= len(chunk)
    fh.seek(end)
    return end - start, digest.hexdigest()


def write_detail_file(rows: Iterable[DetailRow], dest: PathOrFile, *, member: str = "detail.txt",
                      encoding: str = "utf-8", line_end: str = "\n") -> DetailFileSummary:
    """Stream `rows` into a zip at `dest` (a path, or a binary file opened for writing) and
    return the totals and the zip's size and SHA-256.  An empty iterable is refused: 3202 is
    only called when 3201 did not balance, so an empty day has nothing to send."""
    codecs.lookup(encoding)
    if line_end not in ("\n", "\r\n"):
        raise ValueError("line_end must be \\n or \\r\\n")
    own = not hasattr(dest, "write")
    fh: IO[bytes] = open(dest, "w+b") if own else dest        # type: ignore[arg-type]
    summary = DetailFileSummary(member=member)
    try:
        seekable = fh.seekable() and fh.readable()
        start = fh.tell() if seekable else 0
        target = fh if seekable else _Counting(fh)
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as z:
            with z.open(member, "w", force_zip64=True) as out:
                for row in rows:
                    line = detail_line(row)
                    out.write(((line_end if summary.rows else "") + line).encode(encoding))
                    summary.rows += 1
                    summary.medfee_sumamt += row.medfee_sumamt
                    summary.fund_pay_sumamt += row.fund_pay_sumamt
                    summary.acct_pay += row.acct_pay
        if summary.rows == 0:
            raise ReconFileError("no rows: nothing to reconcile in detail")
        if seekable:
            summary.size, summary.sha256 = _hash_back(fh, start)
        else:
            summary.size, summary.sha256 = target.size, target.digest.hexdigest()
    finally:
        if own:
            fh.close()
    return summary


def _open_member(z: zipfile.ZipFile) -> str:
    names = [i.filename for i in z.infolist() if not i.is_dir()]
    if len(names) != 1:
        raise ReconFileError(f"the zip holds {len(names)} files, one expected")
    return names[0]


def _value(text: str) -> Optional[str]:
    text = text.strip()
    return None if text in ("", NULL_TEXT) else text


def _money(text: Optional[str], name: str, line_no: int) -> Optional[Decimal]:
    if text is None:
        return None
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise ReconFileError(f"line {line_no}: {name} is not an amount: {text!r}") from None
    if not d.is_finite():
        raise ReconFileError(f"line {line_no}: {name} is not an amount: {text!r}")
    return d


def _lines(source: PathOrFile, encoding: str) -> Iterator[tuple[int, list[str]]]:
    with zipfile.ZipFile(source) as z:
        name = _open_member(z)
        with z.open(name) as raw:
            text = io.TextIOWrapper(raw, encoding=encoding, newline=None)
            try:
                for n, line in enumerate(text, start=1):
                    line = line.rstrip("\r\n")
                    if n == 1 and line.startswith("\ufeff"):
                        line = line[1:]
                    if not line.strip():
                        continue
                    cols = line.split("\t")
                    # ZS's writer ends every value with a TAB: one empty trailing column.
                    if len(cols) > 1 and cols[-1] == "":
                        cols = cols[:-1]
                    yield n, cols
            except UnicodeDecodeError as exc:
                raise ReconFileError(f"not {encoding} text: {exc}") from None


def read_result_file(source: PathOrFile, *, encoding: str = "utf-8") -> Iterator[ResultRow]:
    """Stream the rows of a 3202 result zip (a path or a binary file)."""
    width = len(RESULT_FILE_COLUMNS)
    for n, cols in _lines(source, encoding):
        if len(cols) < width:
            raise ReconFileError(f"line {n}: {len(cols)} columns, {width} expected")
        values = {name: _value(cols[i]) for i, name in enumerate(RESULT_FILE_COLUMNS)}
        for name in RESULT_FILE_MONEY:
            values[name] = _money(values[name], name, n)
        yield ResultRow(**values, extra=tuple(cols[width:]))


def read_detail_file(source: PathOrFile, *, encoding: str = "utf-8") -> Iterator[DetailRow]:
    """Stream the rows of a detail zip (the simulator reads uploads with it; a site can
    check its own file before sending it)."""
    width = len(DETAIL_FILE_COLUMNS)
    for n, cols in _lines(source, encoding):
        if len(cols) < width:
            raise ReconFileError(f"line {n}: {len(cols)} columns, {width} expected")
        values: dict = {name: _value(cols[i]) for i, name in enumerate(DETAIL_FILE_COLUMNS)}
        for name in ("medfee_sumamt", "fund_pay_sumamt", "acct_pay"):
            values[name] = _money(values[name], name, n) or Decimal("0.00")
        if not values["setl_id"]:
            raise ReconFileError(f"line {n}: setl_id is empty")
        values["refd_setl_flag"] = values["refd_setl_flag"] or REFD_SETL_NORMAL
        yield DetailRow(**values)
