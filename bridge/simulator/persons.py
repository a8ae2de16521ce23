"""The insured persons the simulated platforms know, and their personal-account balances.

Fixed seed set (tests and the demo refer to these by psn_no or certno; certnos are
fictitious but carry a valid GB 11643 check character):

| psn_no               | certno             | name   | insutype | psn_type | region | personal account           |
|----------------------|--------------------|--------|----------|----------|--------|----------------------------|
| 44010000000000000001 | 440106198001010019 | 张三   | 310      | 11       | 440100 | real (实账), 1000.00        |
| 44030000000000000002 | 440304197505050026 | 李四   | 310      | 12       | 440300 | real (实账), 0.00           |
| 44010000000000000003 | 440106201003030034 | 王小明 | 390      | 14       | 440100 | none (resident scheme)     |
| 44060000000000000004 | 440604198808080047 | 赵敏   | 310      | 11       | 440600 | notional (not 实账), 500.00 |
| 44010000000000000005 | 440106199009090054 | 钱七   | 310      | 11       | 440100 | real, 200.00; insurance suspended (uninsured) |
| 44200000000000000006 | 442000196506060061 | 孙八   | 310      | 12       | 442000 | real (实账), 3000.00, civil servant |
| 44010000000000000007 | 440106198502020071 | 吴十   | 310 + 390 | 11 / 14 | 440100 + 440300 | real, 800.00 (on the 310) |
| 44010000000000000008 | 440106199604040086 | 郑十一 | 390      | 14       | 440100 | none; 2001: outpatient pooled fund not enjoyed (med_type 11) |
| 44010000000000000009 | 440106200106060098 | 冯十二 | -        | -        | -      | none; known person with no insurance at all |

psn_type values are [U]: the digests name the field but not its dictionary (offline.md §5.1).
"real" means the account money is held at UnionPay and can be deducted through the face-pay
extension (facepay.md); "notional" is an ordinary account usable by acct_pay in 2207 but not
by face-pay. More persons can be added at run time (POST /__sim__/persons).

Insurances ("coverages"): the person's first insurance is the flat insutype/psn_type/
insuplc_admdvs/insured fields (what mobile pay and face-pay read); `more` holds further ones,
each in force or not (psn_insu_stas "1" in force - the only value the sources agree on,
offline.md §5.1; this simulator uses "2" suspended and "4" terminated [U]).  The personal
account belongs to the first insurance.  `restrictions` are the 2001 answers whose benefit is
not enjoyed (trt_enjymnt_flag 0, with a reason), per insutype and optionally per med_type.
Social-security card: card_no and card_sn (卡识别码: issuing region + "D156" + 22 hex) are
derived from psn_no unless given; the card reader answers them (terminal.py).
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from typing import Any, Optional

from .wire import yuan

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"

ACCOUNT_KINDS = ("real", "notional", "none")


def with_check_char(first17: str) -> str:
    """Complete a 17-digit resident ID prefix with its GB 11643 check character."""
    total = sum(int(c) * w for c, w in zip(first17, _WEIGHTS))
    return first17 + _CHECK[total % 11]


INSU_IN_FORCE, INSU_SUSPENDED, INSU_TERMINATED = "1", "2", "4"


@dataclass
class Coverage:
    """One insurance of a person (a 1101 insuinfo row)."""

    insutype: str
    psn_type: str
    insuplc_admdvs: str
    psn_insu_stas: str = INSU_IN_FORCE
    cvlserv_flag: str = "0"
    emp_name: str = ""
    psn_insu_date: str = "2015-01-01"
    paus_insu_date: Optional[str] = None

    @property
    def active(self) -> bool:
        return self.psn_insu_stas == INSU_IN_FORCE


@dataclass
class Restriction:
    """A benefit the person does not enjoy (a 2001 trtinfo row with trt_enjymnt_flag 0)."""

    insutype: str
    fund_pay_type: str
    trt_chk_rslt: str
    med_type: Optional[str] = None      # None: whatever the medical type


@dataclass
class Person:
    psn_no: str
    certno: str
    psn_name: str
    gend: str                 # 1 male, 2 female
    brdy: str                 # yyyy-MM-dd
    insutype: str             # the first insurance ("" = none at all)
    psn_type: str
    insuplc_admdvs: str
    account: str = "none"     # one of ACCOUNT_KINDS
    balc: Decimal = Decimal("0.00")
    insured: bool = True      # False: insurance suspended (psn_insu_stas 2)
    cvlserv_flag: str = "0"
    naty: str = "01"
    psn_cert_type: str = "01"
    emp_name: str = ""
    more: list[Coverage] = field(default_factory=list)
    restrictions: list[Restriction] = field(default_factory=list)
    card_no: str = ""
    card_sn: str = ""
    idetinfo: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        # A social-security card for everyone: the number and identification code (issuing
        # region + "D156" + 22 hex, the shape of the sample in NMG DllHelper.cs).
        if not self.card_no:
            self.card_no = "X" + self.psn_no[-8:]
        if not self.card_sn:
            area = (self.insuplc_admdvs or "440100")[:6]
            self.card_sn = area + "D156" + hashlib.sha256(self.psn_no.encode()).hexdigest()[:22].upper()

    @property
    def has_account(self) -> bool:
        return self.account != "none"

    def age(self, today_year: int) -> int:
        return today_year - int(self.brdy[:4])

    def coverages(self) -> list[Coverage]:
        first = []
        if self.insutype:
            first = [Coverage(self.insutype, self.psn_type, self.insuplc_admdvs,
                              INSU_IN_FORCE if self.insured else INSU_SUSPENDED, self.cvlserv_flag,
                              self.emp_name, paus_insu_date=None if self.insured else "2025-01-01")]
        return first + [replace(c) for c in self.more]

    def coverage(self, insutype: Any) -> Optional[Coverage]:
        for c in self.coverages():
            if c.insutype == str(insutype):
                return c
        return None

    def account_insutype(self) -> str:
        """The insurance the personal account belongs to (the first one)."""
        return self.insutype

    def public(self) -> dict:
        d = asdict(self)
        d["balc"] = str(self.balc)
        return d


def _seed() -> list[Person]:
    return [
        Person("44010000000000000001", with_check_char("44010619800101001"), "张三", "1", "1980-01-01",
               "310", "11", "440100", "real", Decimal("1000.00"), emp_name="模拟物流有限公司"),
        Person("44030000000000000002", with_check_char("44030419750505002"), "李四", "2", "1975-05-05",
               "310", "12", "440300", "real", Decimal("0.00")),
        Person("44010000000000000003", with_check_char("44010620100303003"), "王小明", "1", "2010-03-03",
               "390", "14", "440100", "none", Decimal("0.00")),
        Person("44060000000000000004", with_check_char("44060419880808004"), "赵敏", "2", "1988-08-08",
               "310", "11", "440600", "notional", Decimal("500.00")),
        Person("44010000000000000005", with_check_char("44010619900909005"), "钱七", "1", "1990-09-09",
               "310", "11", "440100", "real", Decimal("200.00"), insured=False),
        Person("44200000000000000006", with_check_char("44200019650606006"), "孙八", "1", "1965-06-06",
               "310", "12", "442000", "real", Decimal("3000.00"), cvlserv_flag="1"),
        Person("44010000000000000007", with_check_char("44010619850202007"), "吴十", "1", "1985-02-02",
               "310", "11", "440100", "real", Decimal("800.00"), emp_name="模拟科技有限公司",
               more=[Coverage("390", "14", "440300")]),
        Person("44010000000000000008", with_check_char("44010619960404008"), "郑十一", "2", "1996-04-04",
               "390", "14", "440100", "none",
               restrictions=[Restriction("390", "390100", "门诊统筹待遇未激活(缴费未满等待期)", "11")]),
        Person("44010000000000000009", with_check_char("44010620010606009"), "冯十二", "1", "2001-06-06",
               "", "", "", "none", insured=False),
    ]


class PersonError(ValueError):
    pass


class Persons:
    """Registry of persons; balance changes go through debit/credit under one lock."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._by_psn: dict[str, Person] = {}
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._by_psn = {p.psn_no: p for p in _seed()}

    def add(self, fields: dict) -> Person:
        """A person from the control endpoint.  Beyond the flat fields: `insurances` (further
        coverages: insutype, psn_type, insuplc_admdvs, psn_insu_stas), `restrictions`
        (insutype, fund_pay_type, trt_chk_rslt, med_type), `card_no`/`card_sn`, `idetinfo`,
        and `no_insurance: true` for a person with no insurance at all."""
        none_at_all = bool(fields.get("no_insurance"))
        required = ("psn_no", "certno", "psn_name") + (() if none_at_all else ("insutype", "insuplc_admdvs"))
        missing = [k for k in required if not fields.get(k)]
        if missing:
            raise PersonError("missing " + ", ".join(missing))
        account = fields.get("account", "none")
        if account not in ACCOUNT_KINDS:
            raise PersonError(f"account must be one of {ACCOUNT_KINDS}")
        try:
            more = [Coverage(insutype=str(c["insutype"]), psn_type=str(c.get("psn_type", "11")),
                             insuplc_admdvs=str(c["insuplc_admdvs"]),
                             psn_insu_stas=str(c.get("psn_insu_stas", INSU_IN_FORCE)))
                    for c in fields.get("insurances") or []]
            restrictions = [Restriction(insutype=str(r["insutype"]), fund_pay_type=str(r["fund_pay_type"]),
                                        trt_chk_rslt=str(r["trt_chk_rslt"]),
                                        med_type=None if r.get("med_type") is None else str(r["med_type"]))
                            for r in fields.get("restrictions") or []]
        except (KeyError, TypeError, AttributeError) as exc:
            raise PersonError(f"bad insurances/restrictions: {exc}") from None
        p = Person(
            psn_no=str(fields["psn_no"]), certno=str(fields["certno"]), psn_name=str(fields["psn_name"]),
            gend=str(fields.get("gend", "1")), brdy=str(fields.get("brdy", "1980-01-01")),
            insutype="" if none_at_all else str(fields["insutype"]),
            psn_type="" if none_at_all else str(fields.get("psn_type", "11")),
            insuplc_admdvs="" if none_at_all else str(fields["insuplc_admdvs"]), account=account,
            balc=yuan(fields.get("balc", "0.00"), "balc"),
            insured=False if none_at_all else bool(fields.get("insured", True)),
            cvlserv_flag=str(fields.get("cvlserv_flag", "0")), more=more, restrictions=restrictions,
            card_no=str(fields.get("card_no") or ""), card_sn=str(fields.get("card_sn") or ""),
            idetinfo=list(fields.get("idetinfo") or []))
        if p.balc < 0 or (account == "none" and p.balc != 0):
            raise PersonError("balc must be >= 0, and 0 without an account")
        with self._lock:
            if p.psn_no in self._by_psn or self.by_certno(p.certno) or self.by_card(p.card_no):
                raise PersonError("person already exists")
            self._by_psn[p.psn_no] = p
        return p

    def get(self, psn_no: str) -> Optional[Person]:
        with self._lock:
            p = self._by_psn.get(psn_no)
            return replace(p) if p else None

    def by_certno(self, certno: str) -> Optional[Person]:
        with self._lock:
            for p in self._by_psn.values():
                if p.certno.upper() == str(certno).upper():
                    return replace(p)
        return None

    def by_card(self, card_no: str) -> Optional[Person]:
        with self._lock:
            for p in self._by_psn.values():
                if p.card_no == str(card_no):
                    return replace(p)
        return None

    def debit(self, psn_no: str, amount: Decimal) -> Decimal:
        """Take amount from the personal account; returns the balance after."""
        with self._lock:
            p = self._by_psn[psn_no]
            if amount < 0 or amount > p.balc:
                raise PersonError("insufficient personal-account balance")
            p.balc -= amount
            return p.balc

    def credit(self, psn_no: str, amount: Decimal) -> Decimal:
        with self._lock:
            p = self._by_psn[psn_no]
            p.balc += amount
            return p.balc

    def balances(self) -> dict[str, str]:
        with self._lock:
            return {k: str(p.balc) for k, p in self._by_psn.items()}

    def all(self) -> list[Person]:
        with self._lock:
            return [replace(p) for p in self._by_psn.values()]
