-- mibridge example: the identity before the payment, and a kiosk visit, from the HIS's side.
-- sqlite3 his.db < sql/sqlite/examples/identity_enqueue.sql
-- or paste it step by step. docs/identity.md explains every field and row.
--
-- What it does:
--   1-2. a lookup by payAuthNo in the mini-program (identity.lookup), its 'identity' row;
--   3.   the patient's choice among the insurances (identity.choose), the 'identity_choice'
--        row and mi_identity, what the HIS reads back;
--   4.   a lookup at the counter by ID number, name and chosen region;
--   5-8. at a kiosk: a lookup by social-security card, the registration (kiosk.register),
--        the registration fee's pre-settlement and settlement (kiosk.presettle, kiosk.settle);
--   9.   the fee cancelled (kiosk.cancel), then the registration (kiosk.register_cancel).
-- The daemon writes the rows while it runs; the read steps read nothing until it has.
-- Running the whole file again is harmless: the same request with the same payload is ignored,
-- and the consume steps only touch rows that are not consumed yet.
--
-- SQLite has no procedures: requests are plain INSERTs (mi_outbox's triggers validate
-- them), and consuming is an INSERT into the view mi_inbox_consume.
--
-- To adapt it to your HIS:
--   * serial keys: every request of one patient's visit gets the same serial key (the HIS
--     visit number): a choice waits for its lookup, a settlement for its pre-settlement.
--     Enqueue the choice after the patient chose, from the identity row's list.
--   * business keys: unique per kind; the later requests name the earlier ones by them
--     (lookup_key, register_key, presettle_key, settle_key). A failed request is enqueued
--     again under a NEW key.
--   * money as text with 2 decimals ('10.00'); total_amount = the sum of the fee lines.

-- 1. The mini-program looks the patient up with the payAuthNo its channel gave (one-shot,
--    short-lived: use the patient's own). his_patient_id: the HIS's patient, whose identity
--    mibridge writes back once there is one insurance to use (or the patient chose one).
INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
VALUES ('identity.lookup', 'LK-20240301-0001', 'PAT-20240301-0001',
'{"pay_auth_no": "MPAUTH20240301000001", "his_patient_id": "P0007", "channel": "wechat"}');

-- Where it is: state pending -> running -> done (step shows the flow's step).
SELECT id, kind, business_key, state, step, last_error_code, last_error_message
  FROM mi_outbox WHERE serial_key = 'PAT-20240301-0001' ORDER BY id;

-- 2. The identity row: result_json.insurances lists each insurance (insutype, psn_type,
--    insuplc_admdvs, balc, benefit.status enjoyed/restricted, benefit.restrictions);
--    choose = true when the patient must choose. outcome 'failed': error_code
--    NOT_INSURED or PERSON_NOT_FOUND, the message says why: self-pay, stop here.
SELECT id, outcome, error_code, error_message, result_json
  FROM mi_inbox
 WHERE kind = 'identity.lookup' AND business_key = 'LK-20240301-0001'
   AND result_type = 'identity' AND consumed_at IS NULL;

INSERT INTO mi_inbox_consume (id, his_ack)
SELECT id, 'accepted' FROM mi_inbox
 WHERE kind = 'identity.lookup' AND business_key = 'LK-20240301-0001'
   AND result_type = 'identity' AND consumed_at IS NULL;

-- 3. The patient chose the 390 (居民医保) in 深圳: write it back for the HIS.
INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
VALUES ('identity.choose', 'CH-20240301-0001', 'PAT-20240301-0001',
'{"lookup_key": "LK-20240301-0001", "insutype": "390", "insuplc_admdvs": "440300"}');

SELECT id, outcome, error_code, error_message, result_json
  FROM mi_inbox
 WHERE kind = 'identity.choose' AND business_key = 'CH-20240301-0001'
   AND result_type = 'identity_choice' AND consumed_at IS NULL;

INSERT INTO mi_inbox_consume (id, his_ack)
SELECT id, 'accepted' FROM mi_inbox
 WHERE kind = 'identity.choose' AND business_key = 'CH-20240301-0001'
   AND result_type = 'identity_choice' AND consumed_at IS NULL;

-- What the HIS reads to turn its self-pay patient into an insured one (chosen = 1: the
--    patient's choice; the ID number and the name are masked).
SELECT his_patient_id, psn_no, insutype, insuplc_admdvs, psn_type, benefit, benefit_status,
       certno_masked, psn_name_masked, gend, chosen, source_kind, updated_at
  FROM mi_identity WHERE his_patient_id = 'P0007';

-- 4. At the counter: ID number, name and the region the patient chose
--    (mi_v_insured_regions); only that region's insurances are looked up.
INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
VALUES ('identity.lookup', 'LK-20240301-0002', 'PAT-20240301-0002',
'{"certno": "440106198502020071", "psn_name": "吴十", "insuplc_admdvs": "440100", "his_patient_id": "P0008"}');

SELECT id, outcome, error_code, error_message, result_json
  FROM mi_inbox
 WHERE kind = 'identity.lookup' AND business_key = 'LK-20240301-0002'
   AND result_type = 'identity' AND consumed_at IS NULL;

INSERT INTO mi_inbox_consume (id, his_ack)
SELECT id, 'accepted' FROM mi_inbox
 WHERE kind = 'identity.lookup' AND business_key = 'LK-20240301-0002'
   AND result_type = 'identity' AND consumed_at IS NULL;

-- 5. At the kiosk: the patient inserts the social-security card ("terminal": "qr" reads
--    the e-credential QR instead). The kiosk is operator type 2 (self-service terminal).
--    Its identity row carries the ID number and name whole: the only way the HIS learns
--    who stands there (docs/identity.md "Masking").
INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
VALUES ('identity.lookup', 'LK-20240301-0003', 'KIOSK-20240301-0001',
'{"terminal": "card", "operator": {"id": "ZZJ01", "name": "自助机01"}}');

SELECT id, outcome, error_code, error_message, result_json
  FROM mi_inbox
 WHERE kind = 'identity.lookup' AND business_key = 'LK-20240301-0003'
   AND result_type = 'identity' AND consumed_at IS NULL;

INSERT INTO mi_inbox_consume (id, his_ack)
SELECT id, 'accepted' FROM mi_inbox
 WHERE kind = 'identity.lookup' AND business_key = 'LK-20240301-0003'
   AND result_type = 'identity' AND consumed_at IS NULL;

-- 6. The registration (2201) under the insurance chosen; its row has the mdtrt_id.
INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
VALUES ('kiosk.register', 'REG-20240301-0001', 'KIOSK-20240301-0001',
'{"lookup_key": "LK-20240301-0003", "insutype": "310", "insuplc_admdvs": "440100",
 "visit": {"ipt_otp_no": "OP0003", "begntime": "2024-03-01 08:10:00", "atddr_no": "D001", "dr_name": "李医生",
           "dept_code": "NK01", "dept_name": "内科", "caty": "A03"},
 "operator": {"id": "ZZJ01", "name": "自助机01"}}');

SELECT id, outcome, error_code, error_message, result_json
  FROM mi_inbox
 WHERE kind = 'kiosk.register' AND business_key = 'REG-20240301-0001'
   AND result_type = 'registration' AND consumed_at IS NULL;

INSERT INTO mi_inbox_consume (id, his_ack)
SELECT id, 'accepted' FROM mi_inbox
 WHERE kind = 'kiosk.register' AND business_key = 'REG-20240301-0001'
   AND result_type = 'registration' AND consumed_at IS NULL;

-- 7. The registration fee: the trial (2205+2204 -> 2206) shows the split. face_pay true
--    pays the personal-account part from the real account (needs [facepay]).
INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
VALUES ('kiosk.presettle', 'PRE-20240301-0003', 'KIOSK-20240301-0001',
'{"register_key": "REG-20240301-0001", "chrg_bchno": "GH20240301003", "total_amount": "10.00",
 "fees": [{"feedetl_sn": "GH20240301003-1", "fee_ocur_time": "2024-03-01 08:10:00", "med_list_codg": "110200001",
           "medins_list_codg": "GH-001", "det_item_fee_sumamt": "10.00", "cnt": "1", "pric": "10.00",
           "bilg_dept_codg": "NK01", "bilg_dept_name": "内科", "bilg_dr_codg": "D001", "bilg_dr_name": "李医生",
           "rx_circ_flag": "0"}],
 "face_pay": true}');

SELECT id, outcome, error_code, error_message, total_amount, fund_amount, account_amount, cash_amount
  FROM mi_inbox
 WHERE kind = 'kiosk.presettle' AND business_key = 'PRE-20240301-0003'
   AND result_type = 'presettlement' AND consumed_at IS NULL;

INSERT INTO mi_inbox_consume (id, his_ack)
SELECT id, 'accepted' FROM mi_inbox
 WHERE kind = 'kiosk.presettle' AND business_key = 'PRE-20240301-0003'
   AND result_type = 'presettlement' AND consumed_at IS NULL;

-- 8. The patient agrees: the settlement (2207). Its row must be taken, or mibridge
--    cancels it (单边账).
INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
VALUES ('kiosk.settle', 'SET-20240301-0003', 'KIOSK-20240301-0001',
'{"presettle_key": "PRE-20240301-0003"}');

SELECT id, outcome, error_code, error_message, settlement_id, total_amount, fund_amount, account_amount,
       cash_amount, result_json
  FROM mi_inbox
 WHERE kind = 'kiosk.settle' AND business_key = 'SET-20240301-0003'
   AND result_type = 'settlement' AND consumed_at IS NULL;

-- Take it in the same transaction that records the payment in the HIS, within
-- his_ack_timeout_seconds (default 900 s). If it fails as "already consumed", the time
-- had passed and mibridge is cancelling it: roll back, the fee is not paid.
BEGIN;
-- UPDATE his_registration SET paid = 1 WHERE reg_no = 'OP0003';   -- your HIS
INSERT INTO mi_inbox_consume (id, his_ack)
SELECT id, 'accepted' FROM mi_inbox
 WHERE kind = 'kiosk.settle' AND business_key = 'SET-20240301-0003'
   AND result_type = 'settlement' AND consumed_at IS NULL;
SELECT his_ack AS must_be_accepted FROM mi_inbox
 WHERE kind = 'kiosk.settle' AND business_key = 'SET-20240301-0003'
   AND result_type = 'settlement';
COMMIT;

-- 9. The patient leaves: cancel the fee (2208) first, then the registration (2202): the
--    platform refuses 2202 while a settlement stands (SETTLEMENT_STANDS).
INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
VALUES ('kiosk.cancel', 'CAN-20240301-0003', 'KIOSK-20240301-0001',
'{"settle_key": "SET-20240301-0003", "reason": "患者未就诊"}');

INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
VALUES ('kiosk.register_cancel', 'REGX-20240301-0001', 'KIOSK-20240301-0001',
'{"register_key": "REG-20240301-0001"}');

SELECT id, kind, business_key, result_type, outcome, error_code, error_message, result_json
  FROM mi_inbox WHERE business_key IN ('CAN-20240301-0003', 'REGX-20240301-0001') ORDER BY id;

-- Everything this script started, and what mibridge answered so far.
SELECT id, kind, business_key, serial_key, state, step, last_error_code
  FROM mi_outbox WHERE serial_key IN ('PAT-20240301-0001', 'PAT-20240301-0002', 'KIOSK-20240301-0001') ORDER BY id;

SELECT id, kind, business_key, result_type, outcome, error_code, consumed_at, his_ack
  FROM mi_inbox WHERE business_key LIKE '%-20240301-000%' ORDER BY id;
