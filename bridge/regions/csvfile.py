"""The region list as a CSV file, as a DBA writes it (often from Excel):

    admdvs,name,enabled,channels,insutypes,sort_order
    440100,广州市,1,wechat;alipay;counter;kiosk,310;390,1
    440300,深圳市,1,,,2

* UTF-8 (with or without the BOM Excel writes) or GBK (GB 18030, which reads every GBK
  file), found out by decoding; `encoding` forces one.  Comma-separated (Python's csv
  module: quoted fields, doubled quotes); a header line with TABs and no comma means TABs.
* The header names the columns, in any order, in English or in the Chinese names below.
  admdvs and name are required; enabled (1/0, true/false, yes/no, 是/否; default 1),
  channels (wechat, alipay, counter, kiosk; empty = all) and insutypes (empty = all),
  both split at ; , | or blanks, and sort_order are optional.
* A column the header leaves out keeps, on a region already in the list, the value it has
  (a file of codes and names renames regions without touching their channels).
* Blank lines and lines starting with # are skipped.
* Every problem is reported with its line and column, all of them at once (up to
  MAX_PROBLEMS): nothing is loaded unless the whole file is right.
"""
from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from bridge.regions.model import (CHANNELS, SOURCE_CSV, Region, RegionError, check_admdvs, check_channels,
                                  check_insutypes, check_name, check_sort_order)

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 10_000            # China has about 3,000 county-level divisions
MAX_PROBLEMS = 20
ENCODINGS = ("utf-8", "gbk")

# Column -> the header names that mean it (compared without case and surrounding blanks).
COLUMNS = {
    "admdvs": ("admdvs", "insuplc_admdvs", "区划代码", "参保地代码", "参保地编码", "行政区划代码"),
    "name": ("name", "区划名称", "参保地名称", "名称"),
    "enabled": ("enabled", "启用", "是否启用"),
    "channels": ("channels", "渠道"),
    "insutypes": ("insutypes", "险种", "险种类型"),
    "sort_order": ("sort_order", "sort", "排序"),
}
REQUIRED = ("admdvs", "name")
_TRUE = {"1", "true", "yes", "y", "是", "启用"}
_FALSE = {"0", "false", "no", "n", "否", "停用", "禁用"}


@dataclass(frozen=True)
class Sheet:
    regions: list[Region]
    columns: frozenset[str]         # the columns the header named
    encoding: str = "utf-8"


@dataclass(frozen=True)
class Problem:
    line: int
    column: Optional[str]
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.message}"


class CsvError(ValueError):
    """The file cannot be loaded; `problems` lists every line and column at fault."""

    def __init__(self, source: str, problems: list[Problem], more: int = 0) -> None:
        self.problems = problems
        text = "; ".join(str(p) for p in problems)
        if more:
            text += f"; and {more} more"
        super().__init__(f"{source}: {text}")


def decode(data: bytes, source: str, encoding: Optional[str] = None) -> tuple[str, str]:
    """(text, encoding used).  UTF-8 first (a GBK file of Chinese text is almost never valid
    UTF-8), then GBK read as GB 18030."""
    if b"\x00" in data[:4096]:
        raise CsvError(source, [Problem(1, None, "the file looks like UTF-16 (it holds NUL bytes); save it as "
                                                 "UTF-8 or GBK")])
    if encoding:
        name = encoding.lower().replace("_", "-")
        try:
            codecs.lookup(name)
        except LookupError:
            raise CsvError(source, [Problem(1, None, f"unknown encoding {encoding!r}; use utf-8 or gbk")]) from None
        tries = [("gb18030" if name in ("gbk", "gb2312", "cp936") else name, encoding)]
    else:
        tries = [("utf-8", "utf-8"), ("gb18030", "gbk")]
    for codec, label in tries:
        try:
            text = data.decode(codec)
        except UnicodeDecodeError as exc:
            bad = exc
            continue
        return text.removeprefix("\ufeff"), label
    line = data[:bad.start].count(b"\n") + 1
    what = " or ".join(label for _, label in tries)
    raise CsvError(source, [Problem(line, None, f"the file is not {what} text (byte {bad.start + 1} cannot be "
                                                f"read); save it as UTF-8 or GBK, or give the encoding")])


def _header(row: list[str], problems: list[Problem]) -> dict[str, int]:
    names = {alias.lower(): col for col, aliases in COLUMNS.items() for alias in aliases}
    index: dict[str, int] = {}
    for i, raw in enumerate(row):
        text = raw.strip().lower()
        col = names.get(text)
        label = f"{i + 1} ({raw.strip() or 'empty'})"
        if col is None:
            if text:
                problems.append(Problem(1, label, f"unknown column; the columns are {', '.join(COLUMNS)}"))
            else:
                problems.append(Problem(1, label, "a column without a name"))
        elif col in index:
            problems.append(Problem(1, label, f"column {col} appears twice"))
        else:
            index[col] = i
    for col in REQUIRED:
        if col not in index:
            problems.append(Problem(1, None, f"the header has no {col} column"))
    return index


def _enabled(text: str) -> bool:
    t = text.strip().lower()
    if t == "" or t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise RegionError(f"enabled must be 1 or 0 (true/false, yes/no, 是/否), not {text[:20]!r}")


def parse(text: str, source: str = "the file") -> Sheet:
    """The regions of a CSV text, or CsvError with every problem."""
    first = next((l for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")), "")
    delimiter = "\t" if "\t" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    problems: list[Problem] = []
    more = 0
    index: Optional[dict[str, int]] = None
    regions: list[Region] = []
    seen: dict[str, int] = {}

    def problem(p: Problem) -> None:
        nonlocal more
        if len(problems) < MAX_PROBLEMS:
            problems.append(p)
        else:
            more += 1
    try:
        for row in reader:
            line = reader.line_num
            if not any(c.strip() for c in row) or row[0].lstrip().startswith("#"):
                continue
            if index is None:
                header_problems: list[Problem] = []
                index = _header(row, header_problems)
                for p in header_problems:
                    problem(Problem(line, p.column, p.message))
                if header_problems:
                    break           # the rows cannot be read without their columns
                width = len(row)
                continue
            if len(row) != width:
                problem(Problem(line, None, f"{len(row)} fields, the header has {width}"))
                continue
            if len(regions) >= MAX_ROWS:
                problem(Problem(line, None, f"more than {MAX_ROWS} regions"))
                break
            values = {col: row[i] for col, i in index.items()}
            bad = False

            def take(col, check, default=None):
                nonlocal bad
                if col not in values:
                    return default
                try:
                    return check(values[col])
                except RegionError as exc:
                    problem(Problem(line, col, str(exc)))
                    bad = True
                    return default
            admdvs = take("admdvs", check_admdvs)
            name = take("name", check_name)
            enabled = take("enabled", _enabled, True)
            channels = take("channels", check_channels, CHANNELS)
            insutypes = take("insutypes", check_insutypes)
            sort_order = take("sort_order", check_sort_order)
            if bad:
                continue
            if admdvs in seen:
                problem(Problem(line, "admdvs", f"{admdvs} is already on line {seen[admdvs]}"))
                continue
            seen[admdvs] = line
            regions.append(Region(admdvs, name, enabled, channels, insutypes, sort_order, SOURCE_CSV))
    except csv.Error as exc:
        problem(Problem(reader.line_num, None, f"not a well-formed CSV line ({exc})"))
    if index is None and not problems:
        problem(Problem(1, None, "the file is empty: it needs a header line and a line per region"))
    if problems:
        raise CsvError(source, problems, more)
    return Sheet(regions, frozenset(index or ()))


def read(path: str | Path, encoding: Optional[str] = None) -> Sheet:
    """The regions of a file, with the columns it has and the encoding it was read in;
    CsvError says what is wrong, and where."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise CsvError(str(p), [Problem(1, None, f"the file is {size} bytes; a region list is at most "
                                                     f"{MAX_BYTES} bytes")])
        data = p.read_bytes()
    except OSError as exc:
        raise CsvError(str(p), [Problem(1, None, f"cannot read the file: {exc.strerror or exc}")]) from None
    text, used = decode(data, str(p), encoding)
    sheet = parse(text, str(p))
    return Sheet(sheet.regions, sheet.columns, used)
