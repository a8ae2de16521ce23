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

psn_type values are [U]: the digests name the field but not its dictionary (offline.md §5.1).
"real" means the account money is held at UnionPay and can be deducted through the face-pay
extension (facepay.md); "notional" is an ordinary account usable by acct_pay in 2207 but not
by face-pay. More persons can be added at run time (POST /__sim__/persons).
"""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, replace
from decimal import Decimal
from typing import Optional

from .wire import yuan

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"

ACCOUNT_KINDS = ("real", "notional", "none")


def with_check_char(first17: str) -> str:
    """Complete a 17-digit resident ID prefix with its GB 11643 check character."""
    total = sum(int(c) * w for c, w in zip(first17, _WEIGHTS))
    return first17 + _CHECK[total % 11]


@dataclass
class Person:
    psn_no: str
    certno: str
    psn_name: str
    gend: str                 # 1 male, 2 female
    brdy: str                 # yyyy-MM-dd
    insutype: str
    psn_type: str
    insuplc_admdvs: str
    account: str = "none"     # one of ACCOUNT_KINDS
    balc: Decimal = Decimal("0.00")
    insured: bool = True      # False: insurance suspended (psn_insu_stas 2)
    cvlserv_flag: str = "0"
    naty: str = "01"
    psn_cert_type: str = "01"
    emp_name: str = ""

    @property
    def has_account(self) -> bool:
        return self.account != "none"

    def age(self, today_year: int) -> int:
        return today_year - int(self.brdy[:4])

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
        required = ("psn_no", "certno", "psn_name", "insutype", "insuplc_admdvs")
        missing = [k for k in required if not fields.get(k)]
        if missing:
            raise PersonError("missing " + ", ".join(missing))
        account = fields.get("account", "none")
        if account not in ACCOUNT_KINDS:
            raise PersonError(f"account must be one of {ACCOUNT_KINDS}")
        p = Person(
            psn_no=str(fields["psn_no"]), certno=str(fields["certno"]), psn_name=str(fields["psn_name"]),
            gend=str(fields.get("gend", "1")), brdy=str(fields.get("brdy", "1980-01-01")),
            insutype=str(fields["insutype"]), psn_type=str(fields.get("psn_type", "11")),
            insuplc_admdvs=str(fields["insuplc_admdvs"]), account=account,
            balc=yuan(fields.get("balc", "0.00"), "balc"), insured=bool(fields.get("insured", True)),
            cvlserv_flag=str(fields.get("cvlserv_flag", "0")))
        if p.balc < 0 or (account == "none" and p.balc != 0):
            raise PersonError("balc must be >= 0, and 0 without an account")
        with self._lock:
            if p.psn_no in self._by_psn or self.by_certno(p.certno):
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
