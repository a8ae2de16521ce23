"""The face-pay request kinds, and the infno each setting uses.

    facepay.identify                          identify.py
    facepay.{outpatient,inpatient,document}.presettle     presettle.py
    facepay.{outpatient,inpatient,document}.settle        settle.py
    facepay.{outpatient,inpatient,document}.cancel        cancel.py
    facepay.inpatient.admit / .admit_cancel               admission.py
"""
from __future__ import annotations

KIND_IDENTIFY = "facepay.identify"
OUT, INP, DOC = "outpatient", "inpatient", "document"
# DOC: the Guangdong one-shot "document-style" outpatient settlement, which facepay.md
# step 2/4 names beside 2206/2207 and offline.md §11 sequences as
# 1101 -> 2260(setl_flag=0) -> 2260(setl_flag=1), cancel 2261.
INFNO = {OUT: {"presettle": "2206", "settle": "2207", "cancel": "2208"},
         INP: {"presettle": "2303", "settle": "2304", "cancel": "2305"},
         DOC: {"presettle": "2260", "settle": "2260", "cancel": "2261"}}


def kind(setting: str, op: str) -> str:
    return f"facepay.{setting}.{op}"


ALL_KINDS = (KIND_IDENTIFY,) + tuple(kind(s, o) for s in (OUT, INP, DOC)
                                     for o in ("presettle", "settle", "cancel"))

KIND_ADMIT = kind(INP, "admit")
KIND_ADMIT_CANCEL = kind(INP, "admit_cancel")
ADMIT_INFNO = "2401"
