"""facepay.{outpatient,inpatient,document}.presettle: the trial that shows the patient the
split.  Nothing here moves money: every call is safe to repeat.

    outpatient  prepare -> [2201 register] -> 2203 visit -> 2205+2204 fee lines -> 2206 trial
    inpatient   prepare -> 2302+2301 fee lines -> 2303 trial   (the stay: mdtrt_id or admit_key)
    document    prepare -> 2260 setl_flag 0 (the Guangdong one-shot trial)

`prepare` works out the visit (patient.person_of / admitted_stay, the face-pay terms)
and keeps it in flow_data, its secrets in mi_secret; the settlement reads it from there.
"""
from __future__ import annotations

from typing import Optional

from bridge.calls import CallResult
from bridge.engine.flow import BadInput, Fail, Finish, Flow, Goto, InboxRow, Step
from bridge.offline import messages as m
from bridge.offline.client import OfflineClient

from .fsi import after_safe_call, classify_rejection, fsi_call, retry_later
from .kinds import DOC, INFNO, INP, OUT, kind
from .patient import PERSON_SECRETS, SECRET_KEYS, admitted_stay, own_secrets, person_of, split_person, with_secrets
from .payloads import DIAG_KEYS, PERSON_KEYS, PresettleRequest, parse_presettle
from .results import money_row, split_of
from .settings import FacePaySettings
from .visit import document_of, settle_request, terms_dict


class _PresettleBase(Flow):
    setting: str
    # The settlement of this visit sends the credential and notifies the face terminal.
    kept_secrets = PERSON_SECRETS
    secret_keys = SECRET_KEYS

    def __init__(self, settings: FacePaySettings):
        self.settings = settings

    def parse(self, doc: dict) -> PresettleRequest:
        return parse_presettle(doc, self.setting)

    def _prepared(self, ctx, *, chrg_bchno: Optional[str], dr_name: Optional[str]) -> tuple[dict, dict] | Fail:
        """The visit a pre-settlement works on (person, bill, face-pay terms), kept in
        flow_data for the later steps and for the settle request, and its secrets (the
        credential, the face identity) for mi_secret."""
        p: PresettleRequest = ctx.payload
        mdtrt_id = p.mdtrt_id
        person = None
        if p.admit_key is not None:
            stay = admitted_stay(ctx, p.admit_key)
            if isinstance(stay, Fail):
                return stay
            mdtrt_id = stay["mdtrt_id"]
            if p.person is None and p.identify_key is None:
                person = stay                      # the admitted person (and face, if scanned)
        if person is None:
            person = person_of(ctx, p, self.settings.cert_type)
        if isinstance(person, Fail):
            return person
        face_pay, terms = self._mode(ctx)
        visit = {k: person[k] for k in PERSON_KEYS}
        visit.update(total=str(p.total), chrg_bchno=chrg_bchno, med_type=p.med_type, psn_setlway=p.psn_setlway,
                     mid_setl_flag=p.mid_setl_flag, terms=terms, mdtrt_id=mdtrt_id,
                     face=person.get("face"), dr_name=dr_name, operator=p.operator)
        # The operator goes with the visit: settle and cancel run as the same person
        # unless their own request names another.
        public, secret = split_person(visit)
        return {"visit": public, "face_pay": face_pay, "operator": p.operator}, secret

    # -- how ---------------------------------------------------------------------------
    def _mode(self, ctx) -> tuple[bool, Optional[dict]]:
        """(face_pay, terms) for this request: the global switch wins, then the payload."""
        p: PresettleRequest = ctx.payload
        on = self.settings.enabled and (p.face_pay is not False)
        if not on:
            return False, None
        terms = self.settings.terms(p.terminal)
        if terms is None:
            raise BadInput("face-pay needs merchant_no, terminal_no, isv_no and acct_type: "
                           "give 'terminal' in the payload or set them in [facepay]")
        return True, terms_dict(terms)

    # -- the trial --------------------------------------------------------------------
    def step_presettle(self, ctx):
        client: OfflineClient = ctx.service("facepay").offline
        visit = ctx.data["visit"]
        face_pay = bool(ctx.data.get("face_pay"))
        req = settle_request(self.setting, with_secrets(visit, own_secrets(ctx)), face_pay, client,
                             setl_flag="0")
        prep = {OUT: client.prepare_pre_settle_outpatient, INP: client.prepare_pre_settle_inpatient,
                DOC: client.prepare_document_settle}[self.setting]
        r = fsi_call(ctx, prep, req, face_pay=False, nothing_stands=True)
        if not isinstance(r, CallResult):
            return r
        if r.ok:
            s: m.Settlement = r.data
            split = split_of(s)
            visit_out = dict(visit, face_pay=face_pay, presettle_split=split)
            result = {"mdtrt_id": visit["mdtrt_id"], "chrg_bchno": visit.get("chrg_bchno"),
                      "face_pay": face_pay, "infno": INFNO[self.setting]["presettle"]}
            # A visit written before mi_secret holds its secrets in flow_data: moved now.
            public, secret = split_person(visit_out)
            return Finish([money_row("presettlement", split, result=result)], data={"visit": public},
                          secrets=secret)
        if r.refused:
            code, msg, fp_specific = classify_rejection(r)
            if face_pay and fp_specific and ctx.payload.retry_without_face_pay:
                # The HIS asked for it: the same trial without face-pay (account untouched).
                note = InboxRow(result_type="face_pay_refused", outcome="failed", error_code=code,
                                error_message=msg, result={"next": "presettle without face-pay"})
                return Goto("presettle", data={"face_pay": False}, inbox=[note])
            return Fail(code, msg, data={"face_pay": face_pay})
        # 2206/2303 move nothing (offline.md §5.7): a lost answer is simply asked again.
        return retry_later(r)


class OutpatientPresettleFlow(_PresettleBase):
    """[2201 register] -> 2203 visit -> 2205+2204 fee lines -> 2206 trial.  Nothing here
    moves money; 2201 is treated as safe to repeat (OUR CHOICE: a registration holds no
    money, a lost answer may leave an unused registration at the core, which no
    settlement or reconciliation counts)."""

    kind = kind(OUT, "presettle")
    setting = OUT
    initial = "prepare"
    steps = {
        "prepare": Step("prepare", next=("register", "upload_visit")),
        "register": Step("register", calls=("2201",), next=("upload_visit",)),
        "upload_visit": Step("upload_visit", calls=("2203",), next=("upload_fees",)),
        # 2205 (drop this batch's unsettled lines) then 2204: an upload whose answer was
        # lost can be redone without "duplicate feedetl_sn" (offline.md §5.6).
        "upload_fees": Step("upload_fees", calls=("2205", "2204"), next=("presettle",)),
        "presettle": Step("presettle", calls=("2206",), next=("presettle",)),
    }

    def step_prepare(self, ctx):
        p: PresettleRequest = ctx.payload
        prepared = self._prepared(ctx, chrg_bchno=p.chrg_bchno, dr_name=(p.visit or {}).get("dr_name"))
        if isinstance(prepared, Fail):
            return prepared
        data, secret = prepared
        return Goto("upload_visit" if p.mdtrt_id else "register", data=data, secrets=secret)

    def step_register(self, ctx):
        client: OfflineClient = ctx.service("facepay").offline
        v, pv = with_secrets(ctx.data["visit"], own_secrets(ctx)), ctx.payload.visit
        req = m.RegisterRequest(psn_no=v["psn_no"], insutype=v["insutype"], begntime=pv["begntime"],
                                mdtrt_cert_type=v["mdtrt_cert_type"], mdtrt_cert_no=v["mdtrt_cert_no"],
                                ipt_otp_no=pv["ipt_otp_no"], atddr_no=pv["atddr_no"], dr_name=pv["dr_name"],
                                dept_code=pv["dept_code"], dept_name=pv["dept_name"], caty=pv["caty"],
                                insuplc_admdvs=v["insuplc_admdvs"])
        r = fsi_call(ctx, client.prepare_register, req, nothing_stands=True)
        return after_safe_call(r, "registration", lambda r: Goto(
            "upload_visit", data={"visit": dict(ctx.data["visit"], mdtrt_id=r.data.mdtrt_id)}))

    def step_upload_visit(self, ctx):
        client: OfflineClient = ctx.service("facepay").offline
        v, pv = ctx.data["visit"], ctx.payload.visit
        diags = tuple(m.Diagnosis(**{k: d[k] for k in DIAG_KEYS}) for d in pv["diagnoses"])
        req = m.VisitRequest(mdtrt_id=v["mdtrt_id"], psn_no=v["psn_no"], med_type=v["med_type"],
                             begntime=pv["begntime"], main_cond_dscr=pv.get("main_cond_dscr"),
                             insuplc_admdvs=v["insuplc_admdvs"], diseinfo=diags)
        r = fsi_call(ctx, client.prepare_upload_visit, req, nothing_stands=True)
        return after_safe_call(r, "visit upload", lambda r: Goto("upload_fees"))

    def step_upload_fees(self, ctx):
        client: OfflineClient = ctx.service("facepay").offline
        v = ctx.data["visit"]
        r = fsi_call(ctx, client.prepare_revoke_fee_details, m.RevokeFeeDetailsRequest(
            mdtrt_id=v["mdtrt_id"], chrg_bchno=v["chrg_bchno"], psn_no=v["psn_no"],
            insuplc_admdvs=v["insuplc_admdvs"]), nothing_stands=True)
        if isinstance(r, CallResult) and r.ok:
            rows = [m.FeeDetail(mdtrt_id=v["mdtrt_id"], psn_no=v["psn_no"], chrg_bchno=v["chrg_bchno"],
                                rx_circ_flag=f.get("rx_circ_flag", "0"),
                                **{k: f[k] for k in f if k not in ("rx_circ_flag", "chrg_bchno", "med_type")})
                    for f in ctx.payload.fees]
            r = fsi_call(ctx, client.prepare_upload_fee_details, rows, insuplc_admdvs=v["insuplc_admdvs"],
                         nothing_stands=True)
        return after_safe_call(r, "fee lines", lambda r: Goto("presettle"))


class InpatientPresettleFlow(_PresettleBase):
    """2302 "0000" (drop the stay's unsettled lines) + 2301 (the payload's lines are the
    complete list of the stay) -> 2303 trial.  The admission (2401) is not part of it."""

    kind = kind(INP, "presettle")
    setting = INP
    initial = "prepare"
    steps = {
        "prepare": Step("prepare", next=("upload_fees",)),
        "upload_fees": Step("upload_fees", calls=("2302", "2301"), next=("presettle",)),
        "presettle": Step("presettle", calls=("2303",), next=("presettle",)),
    }

    def step_prepare(self, ctx):
        prepared = self._prepared(ctx, chrg_bchno=None, dr_name=None)
        if isinstance(prepared, Fail):
            return prepared
        data, secret = prepared
        return Goto("upload_fees", data=data, secrets=secret)

    def step_upload_fees(self, ctx):
        client: OfflineClient = ctx.service("facepay").offline
        v = ctx.data["visit"]
        r = fsi_call(ctx, client.prepare_revoke_inpatient_fees, m.RevokeInpatientFeesRequest(
            feedetl_sn="0000", mdtrt_id=v["mdtrt_id"], psn_no=v["psn_no"], insuplc_admdvs=v["insuplc_admdvs"]),
            nothing_stands=True)
        if isinstance(r, CallResult) and r.ok:
            rows = [m.FeeDetail(mdtrt_id=v["mdtrt_id"], psn_no=v["psn_no"],
                                med_type=f.get("med_type", v["med_type"]),
                                **{k: f[k] for k in f if k not in ("med_type", "chrg_bchno", "rx_circ_flag")})
                    for f in ctx.payload.fees]
            r = fsi_call(ctx, client.prepare_upload_inpatient_fees, rows, insuplc_admdvs=v["insuplc_admdvs"],
                         nothing_stands=True)
        return after_safe_call(r, "fee lines", lambda r: Goto("presettle"))

class DocumentPresettleFlow(_PresettleBase):
    """2260 with setl_flag 0: the Guangdong one-shot trial, which registers the visit and
    takes the diagnoses and the fee lines in the same call.  Moves nothing."""

    kind = kind(DOC, "presettle")
    setting = DOC
    initial = "prepare"
    steps = {
        "prepare": Step("prepare", next=("presettle",)),
        "presettle": Step("presettle", calls=("2260",), next=("presettle",)),
    }

    def step_prepare(self, ctx):
        p: PresettleRequest = ctx.payload
        prepared = self._prepared(ctx, chrg_bchno=None, dr_name=p.visit.get("dr_name"))
        if isinstance(prepared, Fail):
            return prepared
        data, secret = prepared
        data["visit"]["document"] = document_of(p)
        return Goto("presettle", data=data, secrets=secret)
