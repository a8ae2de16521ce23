"""The CSV a DBA loads: what is read, and every way a file can be wrong, each reported with
its line and column and nothing loaded."""
from __future__ import annotations

import pytest

from bridge.regions import csvfile
from bridge.regions.csvfile import CsvError
from bridge.regions.model import CHANNELS

GOOD = ("admdvs,name,enabled,channels,insutypes,sort_order\n"
        "440100,广州市,1,wechat;alipay,310;390,1\n"
        "# a comment line\n"
        "\n"
        "440300,深圳市,,,,2\n"
        "442000,\"中山市\",否,kiosk counter,,\n")


def problems(text: str) -> list[str]:
    with pytest.raises(CsvError) as ei:
        csvfile.parse(text)
    return [str(p) for p in ei.value.problems]


def test_a_good_file():
    sheet = csvfile.parse(GOOD)
    by = {r.admdvs: r for r in sheet.regions}
    assert list(by) == ["440100", "440300", "442000"]
    assert by["440100"].channels == ("wechat", "alipay") and by["440100"].insutypes == ("310", "390")
    assert by["440100"].sort_order == 1 and by["440100"].enabled and by["440100"].source == "csv"
    assert by["440300"].channels == CHANNELS and by["440300"].insutypes is None and by["440300"].enabled
    assert not by["442000"].enabled and by["442000"].channels == ("counter", "kiosk")
    assert sheet.columns == {"admdvs", "name", "enabled", "channels", "insutypes", "sort_order"}


def test_chinese_headers_tabs_and_any_column_order():
    sheet = csvfile.parse("名称\t参保地代码\t启用\n广州市\t440100\t是\n")
    assert [(r.admdvs, r.name, r.enabled) for r in sheet.regions] == [("440100", "广州市", True)]
    assert sheet.columns == {"admdvs", "name", "enabled"}


@pytest.mark.parametrize("encoding, bom", [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("gbk", b"")])
def test_utf8_with_or_without_bom_and_gbk(tmp_path, encoding, bom):
    f = tmp_path / "r.csv"
    f.write_bytes(bom + GOOD.encode(encoding))
    sheet = csvfile.read(f)
    assert sheet.encoding == encoding and [r.name for r in sheet.regions] == ["广州市", "深圳市", "中山市"]
    assert csvfile.read(f, encoding).regions == sheet.regions


def test_a_gbk_file_read_as_utf8_when_asked_is_refused_with_the_line(tmp_path):
    f = tmp_path / "r.csv"
    f.write_bytes("admdvs,name\n440100,广州市\n".encode("gbk"))
    with pytest.raises(CsvError) as ei:
        csvfile.read(f, "utf-8")
    assert "line 2" in str(ei.value) and "utf-8" in str(ei.value)
    with pytest.raises(CsvError, match="unknown encoding 'latin-9x'"):
        csvfile.read(f, "latin-9x")


def test_utf16_and_unreadable_files(tmp_path):
    f = tmp_path / "r.csv"
    f.write_bytes("admdvs,name\n440100,广州市\n".encode("utf-16"))
    with pytest.raises(CsvError, match="UTF-16"):
        csvfile.read(f)
    with pytest.raises(CsvError, match="cannot read the file"):
        csvfile.read(tmp_path / "missing.csv")


def test_header_problems():
    assert problems("admdvs,nom\n440100,广州市\n") == [
        "line 1, column 2 (nom): unknown column; the columns are admdvs, name, enabled, channels, insutypes, "
        "sort_order", "line 1: the header has no name column"]
    assert problems("admdvs,name,admdvs\n440100,a,440100\n") == ["line 1, column 3 (admdvs): column admdvs appears twice"]
    assert problems("") == ["line 1: the file is empty: it needs a header line and a line per region"]
    assert problems("admdvs,,name\n1,2,3\n")[0].startswith("line 1, column 2 (empty): a column without a name")


def test_row_problems_all_at_once_with_line_and_column():
    text = ("admdvs,name,enabled,channels,insutypes,sort_order\n"
            "44010,广州市,1,,,\n"                 # 2: five digits
            "４４０１００,广州市,1,,,\n"            # 3: full-width digits
            "440300,,2,,,\n"                      # 4: no name, enabled 2
            "440600,佛山市,1,wechat;fax,,\n"       # 5: unknown channel
            "442000,中山市,1,,31-0,x\n"            # 6: bad insutype, bad sort
            "440100,广州市,1,,,\n"                 # 7: good
            "440100,广州,1,,,\n"                   # 8: twice
            "445100,潮州市\n")                     # 9: too few fields
    assert problems(text) == [
        "line 2, column admdvs: admdvs must be a 6-digit division code such as 440100, not '44010'",
        "line 3, column admdvs: admdvs must be a 6-digit division code such as 440100, not '４４０１００'",
        "line 4, column name: name is required",
        "line 4, column enabled: enabled must be 1 or 0 (true/false, yes/no, 是/否), not '2'",
        "line 5, column channels: unknown channel fax; channels are wechat, alipay, counter, kiosk",
        "line 6, column insutypes: insutype '31-0' is not a code such as 310 or 390",
        "line 6, column sort_order: sort_order must be a whole number, not 'x'",
        "line 8, column admdvs: 440100 is already on line 7",
        "line 9: 2 fields, the header has 6"]


def test_line_numbers_count_quoted_newlines_and_a_broken_quote_is_reported():
    # A record whose quoted name spans two lines ends on line 3 (and a newline is no part of a name).
    assert problems('admdvs,name\n440100,"广州\n市"\n4401,x\n') == [
        "line 3, column name: name holds a control character",
        "line 4, column admdvs: admdvs must be a 6-digit division code such as 440100, not '4401'"]
    assert problems('admdvs,name\n440100,广州市\n"440300,深圳市\n')[0].startswith("line 3: not a well-formed CSV line")


def test_long_names_control_characters_and_too_many_problems():
    assert "longer than 100" in problems("admdvs,name\n440100," + "广" * 101 + "\n")[0]
    assert "control character" in problems("admdvs,name\n440100,广州\x07市\n")[0]
    text = "admdvs,name\n" + "".join(f"4401{n:02d}x,a\n" for n in range(30))
    with pytest.raises(CsvError) as ei:
        csvfile.parse(text)
    assert len(ei.value.problems) == csvfile.MAX_PROBLEMS and str(ei.value).endswith("and 10 more")
