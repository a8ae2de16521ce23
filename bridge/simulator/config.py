"""Simulator configuration: keys, credentials, institutions and the choices the spec leaves open.

`SimulatorConfig.generate()` makes a fresh, consistent set (new SM2 key pairs, appId/appSecret,
gateway paasid/secret, the channels' RSA key pairs, mchid/appid, APIv3 key); `client_credentials()`
is what a client of the simulator needs.
"""
from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Optional

from bridge.crypto import sm2

from . import channel_crypto

# The two readings of channels.md §2.7 / §10.4 item 4: who returns the cash of a WeChat mixed
# order after the centre's 6203 refunds it (see channel_ledger.py).
CASH_READINGS = ("hospital_refunds_cash", "centre_returns_cash")
ALIPAY_ORDER_APIS = ("both", "payment", "trade")


def _alnum(n: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


@dataclass
class SimulatorConfig:
    # Mobile-pay centre (mobilepay.md §0, §3, §4): the platform signs with its own key and
    # verifies the institution's signatures with the institution's public key (Base64).
    platform_private_key: str
    institution_public_key: str
    app_id: str
    app_secret: str
    # Offline gateway (offline.md §1.2): x-tif-paasid and the secret in the signature formula.
    paasid: str
    tif_secret: str
    # Institution code -> name. Codes are used as orgCodg (mobile pay) and fixmedins_code (offline).
    institutions: dict[str, str] = field(default_factory=lambda: {
        "H44010600001": "模拟市第一人民医院", "H44010600002": "模拟市第二人民医院"})
    # Institutions enabled for real-account face-pay (facepay.md step 3).
    facepay_institutions: tuple[str, ...] = ("H44010600001",)
    # Where 6302 settlement notices go (mobilepay.md §5.6); None: no notices are sent.
    callback_url: Optional[str] = None
    callback_attempts: int = 3
    callback_retry_delay: float = 0.2
    # The "timeout" fault sleeps this long before answering (the effect still commits).
    timeout_delay: float = 3.0
    # Held only so that generate() can hand it to the client side; the simulator never signs with it.
    institution_private_key: Optional[str] = None
    # Medical-treatment area of the simulated gateway (offline.md §2: mdtrtarea_admvs, e.g. 440100).
    admdvs: str = "440100"
    # Pooled-fund share of a bill, per insutype; the rest goes to the personal account (when
    # used) and then cash. Plausible values, not policy (the digests give no ratios).
    fund_ratios: dict[str, Decimal] = field(default_factory=lambda: {
        "310": Decimal("0.70"), "390": Decimal("0.55"), "510": Decimal("1.00")})
    default_fund_ratio: Decimal = Decimal("0.50")
    # --- mobile-pay choices where mobilepay.md is uncertain ---
    # SM2 user ids tried when verifying requests, in order (§3.3: default first, then appSecret).
    sm2_uid_modes: tuple[str, ...] = ("default", "appSecret")
    # Which user id the platform signs its own responses with (§3.3: effectively the default).
    response_uid_mode: str = "default"
    enc_hex_upper: bool = True               # §4 step 4: Java emits uppercase hex
    code_as_string: bool = False             # §2.2: code 0 as a number (string also seen)
    timestamp_style: str = "ms"              # "ms" (epoch ms as string) or "14" (yyyyMMddHHmmss)
    duplicate_medorgord: str = "return_same"  # §9: "return_same" or "reject"
    pay_auth_ttl_seconds: int = 600          # §5.7: payAuthNo lives minutes
    direct_settle_zero_cash: bool = False    # §9: 6202 settles at once (ordStas 6) when cash is 0
    # --- offline choices ---
    offline_base_path: str = "/ebus/gdyb_inf/poc/hsa/hgs/"   # offline.md §1.1 (SZ config shape)
    unionrefund_path: str = "/ebus/gdyb_inf/poc_hos_unionRefund"  # facepay.md mpc004 test path
    require_sign_no: bool = False            # offline.md §4: some GD gateways do not enforce it
    # Operator codes the centre does not know: their 9001 is refused (a test's mistyped
    # counter operator).  Everyone else may sign in.
    unknown_operators: tuple[str, ...] = ()
    bind_sign_no_to_operator: bool = True    # see Offline.handle (OUR CHOICE)
    tif_max_skew_seconds: Optional[int] = None  # §1.2: no source shows an allowed skew
    # offline.md §5.8 says nothing about settling one charge batch twice; by default a second
    # 2207 (new msgid) settles again, so a client's blind resend shows up as a double charge.
    single_settlement_per_batch: bool = False
    reversible_infnos: tuple[str, ...] = ("2207", "2208", "2304", "2305", "2401")  # offline.md §9.2
    # --- WeChat Pay APIv3 (channels.md §1-§4). Keys are PEM; generate() fills them. The merchant
    # private key and the APIv3 key are held only to hand them to the client side.
    wechat_mchid: str = ""
    wechat_appid: str = ""                   # the mini-program (pays, subscribe messages)
    wechat_app_secret: str = ""
    wechat_oa_appid: str = ""                # the official account (template messages, §4.3)
    wechat_oa_secret: str = ""
    wechat_merchant_serial: str = ""         # merchant API certificate serial (§1.2 serial_no)
    wechat_merchant_public_key: Optional[str] = None
    wechat_merchant_private_key: Optional[str] = None
    wechat_platform_serial: str = ""         # PUB_KEY_ID_SIM... (§1.3, §10.1)
    wechat_platform_private_key: Optional[str] = None
    wechat_apiv3_key: str = ""
    wechat_max_skew_seconds: int = 300       # §1.3: the official sample's 5 minutes
    # §2.7/§10.4: who moves the cash after a 6203 that refunds cash on a WeChat mixed order.
    wechat_cash_after_6203: str = "hospital_refunds_cash"
    # A new refund is PROCESSING (§2.6); it succeeds this long after acceptance, or at the first
    # query after that, unless a refund fault holds it.
    wechat_refund_settle_seconds: float = 0.2
    wechat_token_ttl_seconds: int = 7200     # §4.1
    wechat_token_grace_seconds: int = 300    # §4.1: the previous /cgi-bin/token lives ~5 min more
    wechat_fee_rate: Decimal = Decimal("0.0060")   # the bill's 费率 (0.60% in W7 fixtures)
    wechat_template_ids: tuple[str, ...] = ()  # non-empty: other template ids get 40037
    # §5: the 医保 authorisation's user query (auth code -> payAuthNo); its partner id and
    # secret sign each request (bridge/simulator/wechat_auth.py).
    wechat_auth_partner_id: str = ""
    wechat_auth_partner_secret: str = ""
    # --- Alipay OpenAPI (channels.md §6-§9) ---
    alipay_app_id: str = ""
    alipay_pid: str = ""                     # 2088...: the bill file name and seller_id
    alipay_app_public_key: Optional[str] = None
    alipay_app_private_key: Optional[str] = None
    alipay_private_key: Optional[str] = None  # Alipay's own key: signs responses and notifies
    # §7.2-§7.3: "payment" = alipay.commerce.medical.payment.*, "trade" = the trade variant
    # alipay.commerce.medical.trade.* (InsurancePayExtendParams), "both" = either.
    alipay_order_api: str = "both"
    alipay_bill_url_ttl_seconds: float = 30.0  # §8: the download link dies after 30 s
    # --- both channels ---
    channel_callback_attempts: int = 3
    channel_callback_retry_delay: float = 0.2
    bill_ready_hour: int = 10                # §3.1/§8: day D's bill exists after 10:00 on D+1
    # --- identity and reconciliation choices ---
    # 1901 type that lists the insured regions: no public source names it [U]; the client's
    # OfflineConfig.region_dictionary_type must match.  Other types answer an empty list.
    region_dictionary_type: str = "admdvs"
    insured_regions: dict[str, str] = field(default_factory=lambda: {
        "440100": "广州市", "440300": "深圳市", "440600": "佛山市", "442000": "中山市"})
    # 3201 fixmedins_setl_cnt: "net" = settlements minus cancellations in the range (the digest's
    # "net settlements", §10.1), "rows" = settlement and cancellation rows both counted (ZS
    # InsQgRecService count(*) over settlement rows that include negative cancellation rows).
    recon_count_mode: str = "net"
    # Encoding of the 3202 files read and written (offline.md §10.2: UTF-8 in ZS).
    recon_file_encoding: str = "utf-8"

    @classmethod
    def generate(cls, **overrides) -> "SimulatorConfig":
        platform = sm2.generate_private_key()
        institution = sm2.generate_private_key()
        values = dict(
            platform_private_key=platform.to_base64(),
            institution_public_key=institution.public_key().to_base64(),
            institution_private_key=institution.to_base64(),
            app_id=_alnum(32), app_secret=_alnum(32),
            paasid="sim_" + _alnum(8).lower(), tif_secret=_alnum(32),
            wechat_mchid="19" + channel_crypto.random_digits(8),
            wechat_appid="wx" + secrets.token_hex(8), wechat_app_secret=secrets.token_hex(16),
            wechat_oa_appid="wx" + secrets.token_hex(8), wechat_oa_secret=secrets.token_hex(16),
            wechat_merchant_serial=secrets.token_hex(20).upper(),
            wechat_platform_serial="PUB_KEY_ID_SIM" + channel_crypto.random_digits(18),
            wechat_apiv3_key=_alnum(32),
            wechat_auth_partner_id=channel_crypto.random_digits(8), wechat_auth_partner_secret=_alnum(32),
            alipay_app_id="2021" + channel_crypto.random_digits(12),
            alipay_pid="2088" + channel_crypto.random_digits(12),
        )
        merchant = channel_crypto.process_key("wechat.merchant")
        app = channel_crypto.process_key("alipay.app")
        values.update(
            wechat_merchant_private_key=merchant,
            wechat_merchant_public_key=channel_crypto.public_pem(merchant),
            wechat_platform_private_key=channel_crypto.process_key("wechat.platform"),
            alipay_app_private_key=app, alipay_app_public_key=channel_crypto.public_pem(app),
            alipay_private_key=channel_crypto.process_key("alipay.platform"))
        values.update(overrides)
        cfg = cls(**values)
        cfg.check_channel_settings()
        return cfg

    def check_channel_settings(self) -> None:
        if self.wechat_cash_after_6203 not in CASH_READINGS:
            raise ValueError(f"wechat_cash_after_6203 must be one of {CASH_READINGS}")
        if self.alipay_order_api not in ALIPAY_ORDER_APIS:
            raise ValueError(f"alipay_order_api must be one of {ALIPAY_ORDER_APIS}")

    def wechat_platform_public_key(self) -> Optional[str]:
        key = self.wechat_platform_private_key
        return channel_crypto.public_pem(key) if key else None

    def alipay_public_key(self) -> Optional[str]:
        return channel_crypto.public_pem(self.alipay_private_key) if self.alipay_private_key else None

    def platform_public_key(self) -> str:
        return sm2.load_private_key(self.platform_private_key).public_key().to_base64()

    def fund_ratio(self, insutype: str) -> Decimal:
        return self.fund_ratios.get(insutype, self.default_fund_ratio)

    def client_credentials(self, base_url: str = "") -> dict:
        """What the hospital side needs to talk to this simulator."""
        return {
            "mobilepay": {
                "base_url": base_url,
                "app_id": self.app_id,
                "app_secret": self.app_secret,
                "institution_private_key": self.institution_private_key,
                "platform_public_key": self.platform_public_key(),
                "org_codes": list(self.institutions),
            },
            "offline": {
                "base_url": base_url + self.offline_base_path,
                "unionrefund_url": base_url + self.unionrefund_path,
                "paasid": self.paasid,
                "secret": self.tif_secret,
                "mdtrtarea_admvs": self.admdvs,
                "institutions": dict(self.institutions),
                "facepay_institutions": list(self.facepay_institutions),
            },
            "terminal": {"url": base_url + "/nationec/trans",
                         "card_reader_url": base_url + "/heasec/readcardbas"},
            # channels.md §1: api.mch.weixin.qq.com and api.weixin.qq.com are both this server.
            "wechatpay": {
                "base_url": base_url,
                "api_base_url": base_url,          # /cgi-bin/* (access_token, messages)
                "mchid": self.wechat_mchid,
                "appid": self.wechat_appid,
                "app_secret": self.wechat_app_secret,
                "oa_appid": self.wechat_oa_appid,
                "oa_secret": self.wechat_oa_secret,
                "merchant_serial": self.wechat_merchant_serial,
                "merchant_private_key": self.wechat_merchant_private_key,
                "platform_serial": self.wechat_platform_serial,
                "platform_public_key": self.wechat_platform_public_key(),
                "apiv3_key": self.wechat_apiv3_key,
                # §5: the auth code exchange, as [wechatpay] auth_query_url / auth_partner_*
                "auth_query_url": f"{base_url}/api/mipuserquery/userQuery/{self.wechat_auth_partner_id}",
                "auth_partner_id": self.wechat_auth_partner_id,
                "auth_partner_secret": self.wechat_auth_partner_secret,
            },
            "alipay": {
                "gateway_url": base_url + "/gateway.do",
                "app_id": self.alipay_app_id,
                "pid": self.alipay_pid,
                "app_private_key": self.alipay_app_private_key,
                "alipay_public_key": self.alipay_public_key(),
            },
        }
