"""The 3202 detail file and the 9102 result file (offline.md §10.2): layout, encodings,
streaming, and refusal of what does not follow the layout."""
import io
import tracemalloc
import zipfile
from decimal import Decimal as D

import pytest

from bridge.offline.messages import DETAIL_FILE_COLUMNS, RESULT_FILE_COLUMNS
from bridge.offline.reconfile import (DetailRow, ReconFileError, read_detail_file,
                                      read_result_file, write_detail_file)


def rows():
    return [DetailRow("300014497225", "310003327436", "44030000000001112535", D("100.00"), D("70.00"),
                      D("30.00")),
            DetailRow("300014497226", "310003327437", "44030000000001112536", D("20.10"), D("14.07"),
                      D("0.00")),
            DetailRow("300014497226", "310003327437", "44030000000001112536", D("-20.10"), D("-14.07"),
                      D("0.00"), "1")]


def member_text(data: bytes, encoding="utf-8") -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        (name,) = z.namelist()
        return z.read(name).decode(encoding)


def test_detail_file_layout_and_totals():
    buf = io.BytesIO()
    s = write_detail_file(rows(), buf)
    assert DETAIL_FILE_COLUMNS == ("setl_id", "mdtrt_id", "psn_no", "medfee_sumamt", "fund_pay_sumamt",
                                   "acct_pay", "refd_setl_flag")
    text = member_text(buf.getvalue())
    assert text.split("\n") == [
        "300014497225\t310003327436\t44030000000001112535\t100.00\t70.00\t30.00\t0",
        "300014497226\t310003327437\t44030000000001112536\t20.10\t14.07\t0.00\t0",
        "300014497226\t310003327437\t44030000000001112536\t-20.10\t-14.07\t0.00\t1"]
    assert (s.rows, s.medfee_sumamt, s.fund_pay_sumamt, s.acct_pay) == (3, D("100.00"), D("70.00"),
                                                                         D("30.00"))
    import hashlib
    assert s.size == len(buf.getvalue()) and s.sha256 == hashlib.sha256(buf.getvalue()).hexdigest()


@pytest.mark.parametrize("encoding", ["utf-8", "gbk"])
def test_round_trip_in_both_encodings(tmp_path, encoding):
    mixed = rows() + [DetailRow("S9", "M9", "P9", D("1.00"), D("0.00"), D("1.00"))]
    path = tmp_path / "d.zip"
    write_detail_file(mixed, path, encoding=encoding, line_end="\r\n")
    assert list(read_detail_file(path, encoding=encoding)) == mixed


def test_detail_file_refuses_what_would_break_the_layout():
    for bad in (DetailRow("S\t1", "M", "P", D("1.00"), D("1.00"), D("0.00")),
                DetailRow("S1", "M", "P", D("1.005"), D("1.00"), D("0.00")),
                DetailRow("S1", "M", "P", D("1.00"), D("1.00"), D("0.00"), "2")):
        with pytest.raises(ReconFileError):
            write_detail_file([bad], io.BytesIO())
    with pytest.raises(ReconFileError):
        write_detail_file([], io.BytesIO())
    with pytest.raises(ReconFileError):
        write_detail_file([DetailRow("S1", "M", "P", 1.0, D("1.00"), D("0.00"))], io.BytesIO())


def test_empty_values_are_written_as_null():
    buf = io.BytesIO()
    write_detail_file([DetailRow("S1", "", "P1", D("1.00"), D("0.00"), D("1.00"))], buf)
    assert member_text(buf.getvalue()) == "S1\tnull\tP1\t1.00\t0.00\t1.00\t0"


def result_zip(lines, encoding="utf-8", name="result.txt") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(name, "".join(lines).encode(encoding))
    return buf.getvalue()


@pytest.mark.parametrize("encoding", ["utf-8", "gbk"])
def test_result_file_parse(encoding):
    assert RESULT_FILE_COLUMNS[:5] == ("psn_no", "mdtrt_id", "setl_id", "msgid", "stmt_rslt")
    data = result_zip([
        "P1\tM1\tS1\tH44010600001202601020930000001\t0\t0\t平\t100.00\t70.00\t30.00\r\n",
        "P2\tM2\tS2\tnull\t1\t0\t医药机构多\t20.10\t14.07\tnull\t\r\n",      # ZS: a TAB after each value
        "\r\n",
        "P3\tM3\tS3\tH44010600001202601020930000003\t3\t1\t数据不一致\t-5.00\t-3.50\t-1.50\tX\n"],
        encoding)
    got = list(read_result_file(io.BytesIO(data), encoding=encoding))
    assert [(r.setl_id, r.stmt_rslt, r.memo) for r in got] == [
        ("S1", "0", "平"), ("S2", "1", "医药机构多"), ("S3", "3", "数据不一致")]
    assert got[1].msgid is None and got[1].acct_pay is None and got[1].medfee_sumamt == D("20.10")
    assert got[2].medfee_sumamt == D("-5.00") and got[2].extra == ("X",)


def test_result_file_refusals():
    with pytest.raises(ReconFileError, match="columns"):
        list(read_result_file(io.BytesIO(result_zip(["P1\tM1\tS1\n"]))))
    with pytest.raises(ReconFileError, match="amount"):
        list(read_result_file(io.BytesIO(result_zip(["P\tM\tS\tX\t0\t0\tm\tabc\t1\t1\n"]))))
    with pytest.raises(ReconFileError, match="utf-8"):
        list(read_result_file(io.BytesIO(result_zip(["P\tM\tS\tX\t3\t0\t数据不一致\t1\t1\t1\n"], "gbk"))))
    two = io.BytesIO()
    with zipfile.ZipFile(two, "w") as z:
        z.writestr("a.txt", "x")
        z.writestr("b.txt", "y")
    with pytest.raises(ReconFileError, match="one expected"):
        list(read_result_file(io.BytesIO(two.getvalue())))


def test_both_files_stream(tmp_path):
    """Memory stays flat in the number of rows (a day can hold 100,000 settlements): rows are
    written from a generator and read back one at a time.  The peak (about 0.3 MB, the same
    for 10,000 or 40,000 rows) is far below what holding the rows as objects would take."""
    n = 8_000

    def gen():
        for i in range(n):
            yield DetailRow(f"S{i:011d}", f"M{i:011d}", f"P{i:019d}", D("12.34"), D("8.64"), D("3.70"))

    path = tmp_path / "big.zip"
    tracemalloc.start()
    s = write_detail_file(gen(), path)
    count = sum(1 for _ in read_detail_file(path))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert s.rows == count == n and s.medfee_sumamt == D("12.34") * n
    assert peak < 1_000_000
