"""facepay.identify: face on the terminal -> insured identity (offline.md §7.3 steps 1-3).

    face_auth   cn.nhsa.ec.auth     the terminal scans the face -> authNo
    check       cn.nhsa.auth.check  -> ID number, name, ecToken (mi_secret)
    person      1101                -> psn_no, insurances: mi_identity + the inbox 'identity' row

None of them moves money: all safe to repeat.  The identity's secrets stay in mi_secret
for the pre-settlements and admissions of this patient (patient.person_of).
"""
from __future__ import annotations

from bridge.calls import CallResult
from bridge.engine.flow import Fail, Finish, Flow, Goto, IdentityRow, InboxRow, Retry, Step
from bridge.facepay.client import FaceAuthRequest, FacePayClient
from bridge.offline import messages as m
from bridge.offline.config import Operator

from .fsi import fsi_call, retry_later
from .kinds import KIND_IDENTIFY
from .patient import SECRET_KEYS, identity_secret
from .payloads import IdentifyRequest, parse_identify
from .settings import FacePaySettings


class IdentifyFlow(Flow):
    """cn.nhsa.ec.auth -> cn.nhsa.auth.check -> 1101 (offline.md §7.3 steps 1-3).
    None of them moves money: all safe to repeat."""

    kind = KIND_IDENTIFY
    initial = "face_auth"
    # The pre-settlements and admissions of this patient read them (IDENTITY_SECRETS).
    kept_secrets = ("auth_no", "id_no", "user_name", "ec_token")
    secret_keys = SECRET_KEYS
    steps = {
        "face_auth": Step("face_auth", calls=("cn.nhsa.ec.auth",), next=("check",)),
        "check": Step("check", calls=("cn.nhsa.auth.check",), next=("person",)),
        "person": Step("person", calls=("1101",), next=()),
    }

    def __init__(self, settings: FacePaySettings):
        self.settings = settings

    def parse(self, doc: dict) -> IdentifyRequest:
        return parse_identify(doc)

    def _auth_req(self, ctx) -> FaceAuthRequest:
        p, s = ctx.payload, self.settings
        op = ctx.service("facepay").offline.config.default_operator
        if p.operator:
            op = Operator(p.operator["id"], p.operator["name"], p.operator["type"])
        return FaceAuthRequest(businessType=p.business_type or s.business_type,
                               operatorId=p.operator_id or op.opter,
                               operatorName=p.operator_name or op.opter_name,
                               officeId=p.office_id or s.office_id or "",
                               officeName=p.office_name or s.office_name or "")

    @staticmethod
    def _terminal_failure(r: CallResult, what: str):
        if r.refused:
            return Fail("FACE_AUTH_FAILED", f"{what}: {r.message or r.code}")
        return Retry("TERMINAL_UNAVAILABLE", f"{what}: {r.message or r.outcome.value}")

    def step_face_auth(self, ctx):
        fp: FacePayClient = ctx.service("facepay")
        out_biz_no = fp.offline.next_msgid()
        r = ctx.call(fp.send_terminal, fp.prepare_face_authorise(self._auth_req(ctx), out_biz_no=out_biz_no))
        if not r.ok:
            return self._terminal_failure(r, "face authorisation")
        return Goto("check", data={"out_biz_no": out_biz_no, "operator": ctx.payload.operator},
                    secrets={"auth_no": r.data.authNo})

    def step_check(self, ctx):
        fp: FacePayClient = ctx.service("facepay")
        r = ctx.call(fp.send_terminal, fp.prepare_check_authorisation(
            self._auth_req(ctx), auth_no=identity_secret(ctx, ctx.data, "auth_no"),
            out_biz_no=ctx.data["out_biz_no"]))
        if not r.ok:
            return self._terminal_failure(r, "identity check")
        ident = r.data
        return Goto("person", data={"id_type": ident.idType or "01", "insu_org": ident.insuOrg,
                                    "office": {"id": self._auth_req(ctx).officeId,
                                               "name": self._auth_req(ctx).officeName}},
                    secrets={"id_no": ident.idNo, "user_name": ident.userName, "ec_token": ident.ecToken})

    def step_person(self, ctx):
        fp: FacePayClient = ctx.service("facepay")
        client = fp.offline
        d = ctx.data
        id_no = identity_secret(ctx, d, "id_no")
        # offline.md §7.3 step 3: the ID-card route, insuOrg as insuplc_admdvs.
        req = m.PersonInfoRequest(mdtrt_cert_type="02", mdtrt_cert_no=id_no,
                                  psn_cert_type=d["id_type"], certno=id_no,
                                  psn_name=identity_secret(ctx, d, "user_name"), insuplc_admdvs=d.get("insu_org"))
        r = fsi_call(ctx, client.prepare_person_info, req, nothing_stands=True)
        if not isinstance(r, CallResult):
            return r
        if r.refused:
            return Fail("PERSON_NOT_FOUND", f"1101: {r.message or r.code}")
        if not r.ok:
            return retry_later(r)
        p: m.PersonInfo = r.data
        insured = [i for i in p.insuinfo if i.psn_insu_stas == "1"]
        chosen = insured[0] if insured else (p.insuinfo[0] if p.insuinfo else m.Insurance())
        # benefit (待遇): the person's identity category when 1101 gives one (idetinfo
        # psn_idet_type), else the person type of the chosen insurance.  OUR CHOICE: the
        # digest names both fields (offline.md §5.1) but not which is "the benefit".
        idet = [i.get("psn_idet_type") for i in p.idetinfo if isinstance(i, dict) and i.get("psn_idet_type")]
        benefit = idet[0] if idet else chosen.psn_type
        region = chosen.insuplc_admdvs or d.get("insu_org")
        data = {"psn_no": p.psn_no, "insutype": chosen.insutype,
                "insuplc_admdvs": region, "psn_cert_type": p.psn_cert_type or d["id_type"],
                "insured": bool(insured)}
        # What the HIS needs to write the identity back (the mi_identity columns, the
        # insurances to choose from) and nothing more: no ID number, name or token
        # (docs/facepay.md "What the HIS sees").
        result = {"psn_no": p.psn_no, "psn_cert_type": data["psn_cert_type"], "insutype": chosen.insutype,
                  "insuplc_admdvs": region, "insured": bool(insured), "benefit": benefit,
                  "out_biz_no": d["out_biz_no"],
                  "insurances": [{"insutype": i.insutype, "psn_type": i.psn_type,
                                  "psn_insu_stas": i.psn_insu_stas, "balc": None if i.balc is None else str(i.balc),
                                  "insuplc_admdvs": i.insuplc_admdvs} for i in p.insuinfo]}
        ident = IdentityRow(his_patient_id=ctx.payload.his_patient_id, psn_no=p.psn_no,
                            insuplc_admdvs=region, insutype=chosen.insutype, benefit=benefit,
                            psn_cert_type=data["psn_cert_type"])
        if insured:
            row = InboxRow(result_type="identity", outcome="ok", result=result)
        else:
            # Known to the platform but not insured now: a clear result, not an error of ours.
            row = InboxRow(result_type="identity", outcome="failed", error_code="NOT_INSURED",
                           error_message="the person is not insured (insurance suspended or ended)",
                           result=result)
        # A row written before mi_secret holds its secrets in flow_data: moved now.
        moved = {k: d.get(k) for k in self.kept_secrets if d.get(k)}
        return Finish([row], data=data, identities=[ident], secrets=moved)
