"""identity.lookup: who the patient is, which insurances they hold and which benefits
(issue 13; payloads and rows: docs/identity.md).

    start      the region the patient chose must be offered (mi_insured_region); the route
    read_qr    ec.query / cn.nhsa.qrcode.get at the kiosk -> ecToken (mi_secret)
    read_card  ReadCardBas -> card number and identification code (mi_secret)
    person     1101 by ID number + name, payAuthNo, ecToken or card -> the insurances
    benefits   2001 for each insurance that can be used here -> the `identity` row

Nothing here moves money: every call is safe to repeat.  A refusal that says nothing about
the request (busy, a signature or gateway error: bridge/refusals.py) and a call that was not
sent are asked again after the backoff; only a verdict of the platform ends the lookup
(PERSON_NOT_FOUND, NOT_INSURED).  Every lookup that reaches the platform ends with one
`identity` inbox row: ok with the insurances, or failed with its error_code.
"""
from __future__ import annotations

import time
from typing import Optional

from bridge.calls import CallResult
from bridge.engine.flow import Fail, Finish, Flow, Goto, IdentityRow, InboxRow, Retry, Step
from bridge.facepay.fsi import fsi_call, retry_later
from bridge.offline import messages as m
from bridge.terminal import messages as t

from . import insurances as ins
from .kinds import KIND_LOOKUP
from .masking import masked_certno, masked_name
from .payloads import BY_CARD, BY_EC_TOKEN, BY_ID_CARD, BY_PAY_AUTH_NO, BY_QR, LookupRequest, parse_lookup
from .settings import IdentitySettings

# mi_secret names of a lookup.  CERTNO (the whole ID number 1101 answered) is kept when the
# lookup is done: a kiosk registration of this patient sends it as the credential.
CERTNO = "certno"
READ_SECRETS = ("ec_token", "card_no", "card_sn", "card_name")
SECRET_KEYS = (CERTNO, "psn_name") + READ_SECRETS

# 1101 refusals that say the person is known but not insured (in the region asked).  No
# public source lists 1101's error texts (offline.md §13): OUR CHOICE, the words; any other
# verdict is PERSON_NOT_FOUND with the platform's text.
NOT_INSURED_MARKERS = ("参保信息", "未参保", "无参保", "参保状态")


def failed_identity(code: str, message: str, result: Optional[dict] = None) -> Fail:
    """The lookup's end without an identity to use: one `identity` row, failed, for the HIS."""
    return Fail(code, message, inbox=[InboxRow(result_type="identity", outcome="failed", error_code=code,
                                               error_message=message, result=dict(result or {}))])


class LookupFlow(Flow):
    kind = KIND_LOOKUP
    initial = "start"
    kept_secrets = (CERTNO,)
    secret_keys = SECRET_KEYS
    steps = {
        "start": Step("start", next=("read_qr", "read_card", "person")),
        "read_qr": Step("read_qr", calls=(t.EC_QUERY, t.QRCODE_GET), next=("person",)),
        "read_card": Step("read_card", calls=(t.CARD_READ,), next=("person",)),
        "person": Step("person", calls=("1101",), next=("benefits",)),
        "benefits": Step("benefits", calls=("2001",), next=()),
    }

    def __init__(self, settings: IdentitySettings):
        self.settings = settings

    def parse(self, doc: dict) -> LookupRequest:
        return parse_lookup(doc, self.settings)

    # -- start: the region, the route ------------------------------------------------
    def step_start(self, ctx):
        p: LookupRequest = ctx.payload
        if p.insuplc_admdvs and self.settings.require_listed_region:
            why = ins.region_problem(ctx.port.insured_region(p.insuplc_admdvs), p.insuplc_admdvs, p.channel)
            if why:
                return failed_identity("REGION_NOT_OFFERED", f"the region chosen cannot be used here: {why}",
                                       {"insuplc_admdvs": p.insuplc_admdvs})
        data = {"route": p.route, "operator": p.operator}
        nxt = {BY_QR: "read_qr", BY_CARD: "read_card"}.get(p.route, "person")
        return Goto(nxt, data=data)

    # -- the kiosk's reads ---------------------------------------------------------------
    def _terminal(self, ctx):
        term = ctx.service("facepay").terminal_client
        if term is None:
            return failed_identity("TERMINAL_NOT_CONFIGURED", "no terminal is configured ([identity] terminal_url)")
        return term

    @staticmethod
    def _read_failed(r: CallResult, what: str):
        if r.refused:
            # The library says no QR was shown / no card is inserted: the patient tries again
            # with a new request; nothing was looked up.
            return failed_identity("READ_FAILED", f"{what}: {r.message or r.code}")
        return Retry("TERMINAL_UNAVAILABLE", f"{what}: {r.message or r.outcome.value}")

    def _who(self, ctx) -> tuple[str, str]:
        op = ctx.data.get("operator") or {}
        default = ctx.service("facepay").offline.config.default_operator
        return (op.get("id") or (default.opter if default else ""),
                op.get("name") or (default.opter_name if default else ""))

    def step_read_qr(self, ctx):
        term = self._terminal(ctx)
        if isinstance(term, Fail):
            return term
        if not term.config.url:
            return failed_identity("TERMINAL_NOT_CONFIGURED", "no e-credential library URL ([identity] terminal_url)")
        s = self.settings
        op_id, op_name = self._who(ctx)
        req = t.QrQueryRequest(businessType=s.business_type, operatorId=op_id, operatorName=op_name,
                               officeId=s.office_id, officeName=s.office_name,
                               deviceType=t.SELF_SERVICE if s.qr_trans_type == t.EC_QUERY else None)
        r = ctx.call(term.send, term.prepare_read_qr(req, trans_type=s.qr_trans_type))
        if not r.ok:
            return self._read_failed(r, "e-credential QR")
        ident: t.InsuredIdentity = r.data
        return Goto("person", data={"insu_org": ident.insuOrg}, secrets={"ec_token": ident.ecToken})

    def step_read_card(self, ctx):
        term = self._terminal(ctx)
        if isinstance(term, Fail):
            return term
        try:
            prepared = term.prepare_read_card()
        except ValueError as exc:
            return failed_identity("TERMINAL_NOT_CONFIGURED", f"card reader: {exc} ([identity] card_reader_url)")
        r = ctx.call(term.send, prepared)
        if not r.ok:
            return self._read_failed(r, "social-security card")
        card: t.CardBasics = r.data
        return Goto("person", data={"insu_org": card.issuing_area or None},
                    secrets={"card_no": card.card_no, "card_sn": card.card_sn, "card_name": card.name})

    # -- person: 1101 ------------------------------------------------------------------
    def _request(self, ctx) -> m.PersonInfoRequest:
        p: LookupRequest = ctx.payload
        # The region the patient chose, when they chose one; a kiosk read without a choice
        # asks without one, so that every insurance of the person is listed (1101's input
        # holds no psn_no: the envelope's region is optional, offline.md §2 #4).
        region = p.insuplc_admdvs
        if p.route == BY_ID_CARD:
            return m.PersonInfoRequest.by_id_card(p.certno, p.psn_name, insuplc_admdvs=region)
        if p.route == BY_PAY_AUTH_NO:
            return m.PersonInfoRequest.by_pay_auth_no(p.pay_auth_no, insuplc_admdvs=region)
        if p.route == BY_EC_TOKEN:
            return m.PersonInfoRequest.by_ecredential(p.ec_token, insuplc_admdvs=region)
        if p.route == BY_QR:
            return m.PersonInfoRequest.by_ecredential(ctx.secret("ec_token"), insuplc_admdvs=region)
        return m.PersonInfoRequest.by_card(ctx.secret("card_no"), ctx.secret("card_sn"),
                                           psn_name=ctx.secret("card_name"), insuplc_admdvs=region)

    def step_person(self, ctx):
        p: LookupRequest = ctx.payload
        client = ctx.service("facepay").offline
        try:
            req = self._request(ctx)
        except ValueError as exc:       # a read whose secrets are gone (purged): read again
            return failed_identity("READ_FAILED", f"the kiosk's read is gone: {exc}; read again")
        r = fsi_call(ctx, client.prepare_person_info, req, nothing_stands=True)
        if not isinstance(r, CallResult):
            return r
        if r.refused:
            msg = r.message or r.code or "refused"
            code = "NOT_INSURED" if any(w in msg for w in NOT_INSURED_MARKERS) else "PERSON_NOT_FOUND"
            return failed_identity(code, f"1101: {msg}", {"insuplc_admdvs": p.insuplc_admdvs, "route": p.route})
        if not r.ok:
            # Not sent, busy, a signature refusal, an answer lost: nothing is known yet.
            return retry_later(r)
        person: m.PersonInfo = r.data
        region_of = ctx.port.insured_region if self.settings.require_listed_region else None
        rows = ins.insurance_rows(person, region_asked=p.insuplc_admdvs, channel=p.channel, region_of=region_of)
        found = {"psn_no": person.psn_no, "psn_cert_type": person.psn_cert_type, "gend": person.gend,
                 "certno_masked": masked_certno(person.certno), "psn_name_masked": masked_name(person.psn_name),
                 "psn_idet_type": ins.idet_type(person), "insu_org": ctx.data.get("insu_org"), "insurances": rows}
        secrets = {CERTNO: person.certno, "psn_name": person.psn_name}
        if not any(r["selectable"] for r in rows):
            nc = ins.pick(rows)
            return failed_identity("NOT_INSURED", nc.message, self._result(ctx, found, secrets))
        if not self.settings.benefit_check:
            return self._identified(ctx, found, [ins.with_benefit(r, self._med_type(ctx)) for r in rows], secrets)
        return Goto("benefits", data=found, secrets=secrets)

    def _med_type(self, ctx) -> str:
        return ctx.payload.med_type or self.settings.med_type

    # -- benefits: 2001 per usable insurance -----------------------------------------------
    def step_benefits(self, ctx):
        """2001 for each insurance that can be used (reads only: asked again as a whole when
        one answer is missing).  A refused check is shown as such, not as a failed lookup:
        the person is insured, the benefit is unknown."""
        client = ctx.service("facepay").offline
        med_type = self._med_type(ctx)
        now = time.strftime("%Y-%m-%d %H:%M:%S")
        out = []
        for row in ctx.data["insurances"]:
            row = dict(row)
            if not row["selectable"]:
                out.append(ins.with_benefit(row, med_type))
                continue
            r = fsi_call(ctx, client.prepare_benefit_check, m.BenefitCheckRequest(
                psn_no=ctx.data["psn_no"], insutype=row["insutype"], med_type=med_type, begntime=now,
                insuplc_admdvs=row["insuplc_admdvs"]), nothing_stands=True)
            if not isinstance(r, CallResult):
                return r
            if r.ok:
                out.append(ins.with_benefit(row, med_type, r.data))
            elif r.refused:
                out.append(ins.with_benefit(row, med_type, failed=f"2001: {r.message or r.code}"))
            else:
                return retry_later(r)
        return self._identified(ctx, dict(ctx.data), out, {})

    # -- the end -------------------------------------------------------------------------------
    def _result(self, ctx, found: dict, secrets: dict, rows: Optional[list] = None) -> dict:
        p: LookupRequest = ctx.payload
        rows = found["insurances"] if rows is None else rows
        usable = [r for r in rows if r["selectable"]]
        result = {"psn_no": found["psn_no"], "psn_cert_type": found["psn_cert_type"], "gend": found["gend"],
                  "certno": found["certno_masked"], "psn_name": found["psn_name_masked"], "route": p.route,
                  "psn_idet_type": found.get("psn_idet_type"),
                  "insuplc_admdvs": p.insuplc_admdvs, "insu_org": found.get("insu_org"),
                  "his_patient_id": p.his_patient_id, "insurances": ins.public(rows),
                  "choices": len(usable), "choose": len(usable) > 1}
        if p.at_terminal and self.settings.whole_identity_on_terminal:
            # docs/identity.md "Masking": the kiosk's HIS has no other way to know who is there.
            result.update(certno=secrets.get(CERTNO) or ctx.secret(CERTNO),
                          psn_name=secrets.get("psn_name") or ctx.secret("psn_name"))
        return result

    def _identified(self, ctx, found: dict, rows: list, secrets: dict):
        p: LookupRequest = ctx.payload
        result = self._result(ctx, found, secrets, rows)
        data = dict(found, insurances=rows)
        identities = []
        only = ins.pick(rows)
        if p.his_patient_id and not isinstance(only, ins.NoChoice):
            # One insurance to use: nothing to choose, the identity is written back now.
            identities.append(identity_row(p.his_patient_id, found, only, chosen=False))
            result["written_back"] = True
        return Finish([InboxRow(result_type="identity", outcome="ok", result=result)], data=data,
                      identities=identities, secrets=secrets)


def identity_row(his_patient_id: str, found: dict, row: dict, *, chosen: bool) -> IdentityRow:
    """The mi_identity row of a person (a done lookup's flow_data) under one insurance."""
    b = row.get("benefit") or {}
    return IdentityRow(his_patient_id=his_patient_id, psn_no=found["psn_no"], insuplc_admdvs=row["insuplc_admdvs"],
                       insutype=row["insutype"], benefit=ins.benefit_category(found, row),
                       psn_cert_type=found.get("psn_cert_type"), psn_type=row["psn_type"],
                       med_type=b.get("med_type"), benefit_status=b.get("status"),
                       certno_masked=found.get("certno_masked"), psn_name_masked=found.get("psn_name_masked"),
                       gend=found.get("gend"), chosen=chosen)
