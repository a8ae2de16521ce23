"""Masking of personal data in log text and in structured objects (bridge/masking.py)."""
from __future__ import annotations

import pytest

from bridge.masking import mask_text, mask_value

# Full-width digits, as IME input and some HIS front ends write them.
FW = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")

# (text, masked text): every personal number in it masked, the rest untouched.
MASKED = [
    ("id 110101199003071234 paid", "id 110101********1234 paid"),
    ("ID44082519900101123X", "ID440825********123X"),
    ("certno=44082519900101123x;", "certno=440825********123x;"),
    ("身份证440825199001011234号", "身份证440825********1234号"),
    ("440825 19900101 123X", "440825 ******** 123X"),
    ("440825-19900101-123X", "440825-********-123X"),
    ("old id 440825900101123 ok", "old id 440825******123 ok"),          # 15 digits, 1st generation
    ("ID440825900101123", "ID440825******123"),
    ("44082519900101123X".translate(FW), "４４０８２５********１２３Ｘ"),
    ("phone 13812345678", "phone 138****5678"),
    ("+8613812345678", "+86138****5678"),
    ("8613812345678", "86138****5678"),
    ("0086 13812345678", "0086 138****5678"),
    ("86-138-1234-5678", "86-138-****-5678"),
    ("+86 138 1234 5678", "+86 138 **** 5678"),
    ("(+86)13812345678", "(+86)138****5678"),
    ("138-1234-5678", "138-****-5678"),
    ("138 1234 5678", "138 **** 5678"),
    ("13812345678".translate(FW), "１３８****５６７８"),
    ("＋８６１３８１２３４５６７８", "＋８６１３８****５６７８"),
    ('{"tel":"19912345678","other":"13912345678"}', '{"tel":"199****5678","other":"139****5678"}'),
    ("13812345678,13912345678", "138****5678,139****5678"),
    ("call 13812345678.", "call 138****5678."),
    ("手机13812345678，身份证110101199003071234",
     "手机138****5678，身份证110101********1234"),
]

# Numbers that are not personal data: amounts, order ids, serials, timestamps.
UNTOUCHED = [
    "amount 13812345678.00",                 # money, however large
    "total 12345678901234.56",
    "refund 0.13812345678",
    "fee 440825199001011234.00",
    "rate 0.440825199001011234",
    "ts 1700000000000",                      # epoch ms
    "ts 1700000000",                         # epoch s
    "at 20240101120000",                     # yyyyMMddHHmmss
    "at 20240101120000123",                  # with ms
    "2024-01-01 12:00:00.123",
    "orgBizSer BIZ1700000000000123456",
    "payOrdId ORD202401011200001234",        # 18 digits, but no birth date in them
    "medOrgOrd INV-13812345678X",            # letters glued on both sides
    "order ORD13812345678",
    "msg 6201-0f3e13812345678abcdef0123456789",
    "MIBR1a2b3c4d5e6f7a8b9c0d",
    "row 123456789012345",                   # 15 digits without a date in them
    "serial 202413012345678",               # month 13
    "setlId 4408251990130112345",            # 19 digits
    "code 12345678901",                      # 11 digits, not a mobile prefix
    "psn_no 44000019900101123456",           # 20 digits
]


@pytest.mark.parametrize("text,expected", MASKED)
def test_personal_numbers_in_text_are_masked(text, expected):
    assert mask_text(text) == expected


@pytest.mark.parametrize("text", UNTOUCHED)
def test_other_numbers_are_left_alone(text):
    assert mask_text(text) == text


# (field name, value, masked value): names compared without case, "_" or "-".
FIELDS = [
    ("telephone", "020-87654321", "020*****4321"),
    ("Telephone", "020-12345678", "020*****5678"),
    ("mobile_phone", "13812345678", "138****5678"),
    ("phoneNo", 13812345678, "138****5678"),             # a JSON number is masked as its text
    ("agnter_tel", "13812345678", "138****5678"),
    ("idCardNo", "44082519900101123X", "4408**********123X"),
    ("id_card_no", "44082519900101123X", "4408**********123X"),
    ("ID_NO", "440825900101123", "4408*******1123"),
    ("certno", 440825900101123, "4408*******1123"),
    ("agnter_certno", "44082519900101123X", "4408**********123X"),
    ("realName", "张三丰", "张*丰"),
    ("real_name", "李四", "李*"),
    ("userName", "王五", "王*"),
    ("psnName", "赵六", "赵*"),
    ("ec_token", "tok-abc", "***"),
    ("ecToken", "tok-abc", "***"),
    ("EC-TOKEN", "tok-abc", "***"),
    ("payToken", {"nested": "x"}, "***"),
    ("pay_auth_no", "AUTH1", "***"),
    ("access_token", "abc", "***"),
]


@pytest.mark.parametrize("field,value,masked", FIELDS)
def test_personal_fields_are_masked_whatever_their_spelling(field, value, masked):
    assert mask_value({"outer": [{field: value, "feeSumamt": "12.50"}]}) == \
        {"outer": [{field: masked, "feeSumamt": "12.50"}]}


def test_other_fields_keep_their_values():
    doc = {"payOrdId": "ORD202401011200001234", "feeSumamt": "13812345678.00", "timestamp": 1700000000000,
           "item_name": "阿莫西林", "dept_name": "内科", "cnt": 2, "flag": True, "phoneBook": None,
           "medOrgOrd": "INV-1"}
    assert mask_value(doc) == doc


def test_free_text_inside_objects_is_masked_too():
    assert mask_value({"memo": "patient 13812345678", "list": ["ID44082519900101123X"]}) == \
        {"memo": "patient 138****5678", "list": ["ID440825********123X"]}


def test_log_lines_mask_the_new_forms(capsys):
    from loguru import logger

    from daemon import logs

    logs.setup("INFO")
    logger.info("callback from +8613812345678 for ID44082519900101123X and 138-1234-5678, old id 440825900101123")
    err = capsys.readouterr().err
    assert "+86138****5678" in err and "ID440825********123X" in err and "138-****-5678" in err
    assert "440825******123" in err
    for raw in ("13812345678", "44082519900101123X", "1234-5678", "440825900101123"):
        assert raw not in err
