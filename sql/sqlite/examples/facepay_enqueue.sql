-- mibridge example: one face-pay visit (医保码实账一站式结算) from the HIS's side, by hand.
-- sqlite3 his.db < sql/sqlite/examples/facepay_enqueue.sql
-- or paste it step by step into sqlite3. docs/facepay.md explains every field and row.
--
-- What it does (one visit, serial key VISIT-20240301-0001):
--   1. enqueues a face scan (facepay.identify, business key FACE-20240301-0001);
--   2. reads its 'identity' row (who the patient is) and consumes it;
--   3. enqueues the pre-settlement of the bill (facepay.outpatient.presettle);
--   4. reads its 'presettlement' row (the split to show the patient) and consumes it;
--   5. enqueues the settlement (facepay.outpatient.settle);
--   6. reads its 'settlement' row and takes it ('accepted'): required, as
--      mibridge cancels a settlement the HIS does not take;
--   7. enqueues a cancel of that settlement (facepay.outpatient.cancel);
--   8. a second visit (VISIT-20240301-0002) in the Guangdong one-shot mode
--      (2260): facepay.document.presettle and facepay.document.settle, with
--      their rows read and consumed the same way.
-- The daemon writes the rows while it runs; the read steps read nothing until
-- it has (and until the patient has faced the terminal). Running the whole
-- file again is harmless: the same request with the same payload is ignored,
-- and the consume steps only touch rows that are not consumed yet.
--
-- SQLite has no procedures: requests are plain INSERTs (mi_outbox's triggers
-- validate them), and consuming is the UPDATE shown at the top of install.sql.
--
-- To adapt it to your HIS:
--   * serial keys: every request of one visit gets the same serial key, the HIS
--     visit number: the settlement then waits for its pre-settlement and the
--     cancel for its settlement. Commit each request before the next one.
--   * business keys: unique per kind; the later requests name the earlier ones
--     by them (identify_key, presettle_key, settle_key). A failed request is
--     enqueued again under a NEW key.
--   * operator (optional): who is named in the messages and signed in with
--     9001 once a day; type "1" staff (default), "2" self-service kiosk,
--     "3" mobile terminal. Left out: the [offline] operator of the daemon.
--   * terminal (optional): the expContent terms; left out: the [facepay] ones.
--   * money as text with 2 decimals ('60.00'); total_amount = sum of the fee
--     lines' det_item_fee_sumamt.

-- 1. The face scan at the terminal.
INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
VALUES ('facepay.identify', 'FACE-20240301-0001', 'VISIT-20240301-0001',
'{"his_patient_id": "P0001",
 "terminal": {"operator_id": "op002", "operator_name": "收费员乙", "office_id": "MZ01", "office_name": "门诊"},
 "business_type": "01101"}');

-- Where it is: state pending -> running -> ... (step shows the flow's step).
SELECT id, kind, business_key, state, step, last_error_code, last_error_message
  FROM mi_outbox WHERE serial_key = 'VISIT-20240301-0001' ORDER BY id;

-- 2. The identity row: psn_no, insured, benefit in result_json. outcome
--    'failed' with NOT_INSURED: the patient pays as self-pay, stop here.
SELECT id, outcome, error_code, error_message, result_json
  FROM mi_inbox
 WHERE kind = 'facepay.identify' AND business_key = 'FACE-20240301-0001'
   AND result_type = 'identity' AND consumed_at IS NULL;
-- mibridge also keeps the person in mi_identity, by your patient id.
SELECT his_patient_id, psn_no, insuplc_admdvs, insutype, benefit FROM mi_identity WHERE his_patient_id = 'P0001';

-- Consume it once read. By id:
--   INSERT INTO mi_inbox_consume (id, his_ack) VALUES (42, 'accepted');
-- (SQLite has no procedures: the view's trigger refuses a missing row, one
-- already consumed, and a verdict other than 'accepted' or 'rejected'.)
INSERT INTO mi_inbox_consume (id, his_ack)
SELECT id, 'accepted' FROM mi_inbox
 WHERE kind = 'facepay.identify' AND business_key = 'FACE-20240301-0001'
   AND result_type = 'identity' AND consumed_at IS NULL;

-- 3. The pre-settlement (2201 -> 2203 -> 2204 -> 2206) of the identified
--    patient's bill. retry_without_face_pay: if the platform refuses face-pay,
--    the same request is redone as a plain settlement (a face_pay_refused row
--    says why).
INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
VALUES ('facepay.outpatient.presettle', 'PRE-20240301-0001', 'VISIT-20240301-0001',
'{"identify_key": "FACE-20240301-0001",
 "chrg_bchno": "B20240301001",
 "visit": {"ipt_otp_no": "OP0001", "begntime": "2024-03-01 09:30:00", "atddr_no": "D001", "dr_name": "李医生",
           "dept_code": "NK01", "dept_name": "内科", "caty": "A03",
           "diagnoses": [{"diag_type": "1", "diag_srt_no": "1", "diag_code": "J06.900", "diag_name": "上呼吸道感染",
                          "diag_dept": "内科", "dise_dor_no": "D001", "dise_dor_name": "李医生",
                          "diag_time": "2024-03-01 09:30:00", "vali_flag": "1"}]},
 "fees": [{"feedetl_sn": "B20240301001-1", "fee_ocur_time": "2024-03-01 09:35:00", "med_list_codg": "XJ01",
           "medins_list_codg": "H-XJ01", "det_item_fee_sumamt": "20.00", "cnt": "1", "pric": "20.00",
           "bilg_dept_codg": "NK01", "bilg_dept_name": "内科", "bilg_dr_codg": "D001", "bilg_dr_name": "李医生",
           "rx_circ_flag": "0"},
          {"feedetl_sn": "B20240301001-2", "fee_ocur_time": "2024-03-01 09:35:00", "med_list_codg": "YP02",
           "medins_list_codg": "H-YP02", "det_item_fee_sumamt": "40.00", "cnt": "2", "pric": "20.00",
           "bilg_dept_codg": "NK01", "bilg_dept_name": "内科", "bilg_dr_codg": "D001", "bilg_dr_name": "李医生",
           "rx_circ_flag": "0"}],
 "total_amount": "60.00",
 "face_pay": true,
 "terminal": {"merchant_no": "102440100000004", "terminal_no": "00000143", "isv_no": "123456", "acct_type": "A02"},
 "retry_without_face_pay": true,
 "operator": {"id": "op002", "name": "收费员乙", "type": "1"}}');

-- 4. The presettlement row: the split to show the patient. account_amount is
--    the real personal account, cash_amount what the cashier still collects.
SELECT id, outcome, error_code, error_message, total_amount, fund_amount, account_amount, cash_amount, result_json
  FROM mi_inbox
 WHERE kind = 'facepay.outpatient.presettle' AND business_key = 'PRE-20240301-0001'
   AND result_type = 'presettlement' AND consumed_at IS NULL;

INSERT INTO mi_inbox_consume (id, his_ack)
SELECT id, 'accepted' FROM mi_inbox
 WHERE kind = 'facepay.outpatient.presettle' AND business_key = 'PRE-20240301-0001'
   AND result_type = 'presettlement' AND consumed_at IS NULL;

-- 5. The patient agrees: the settlement (2207). Everything else comes from
--    the pre-settlement.
INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
VALUES ('facepay.outpatient.settle', 'SET-20240301-0001', 'VISIT-20240301-0001',
'{"presettle_key": "PRE-20240301-0001", "operator": {"id": "op002", "name": "收费员乙", "type": "1"}}');

-- 6. The settlement row: the amounts actually settled, settlement_id = setl_id.
SELECT id, outcome, error_code, error_message, settlement_id, total_amount, fund_amount, account_amount,
       cash_amount, result_json
  FROM mi_inbox
 WHERE kind = 'facepay.outpatient.settle' AND business_key = 'SET-20240301-0001'
   AND result_type = 'settlement' AND consumed_at IS NULL;

-- Take it in the same transaction that records the payment in the HIS, within
-- his_ack_timeout_seconds (default 900 s). his_ack = 'rejected' instead makes
-- mibridge cancel the settlement at once. The row must then read
-- 'accepted': 'rejected' means the time had passed and mibridge is cancelling it,
-- so roll back: the bill is not paid.
BEGIN;
-- UPDATE his_bill SET paid = 1 WHERE bill_no = 'B20240301001';   -- your HIS
INSERT INTO mi_inbox_consume (id, his_ack)
SELECT id, 'accepted' FROM mi_inbox
 WHERE kind = 'facepay.outpatient.settle' AND business_key = 'SET-20240301-0001'
   AND result_type = 'settlement' AND consumed_at IS NULL;
SELECT his_ack AS must_be_accepted FROM mi_inbox
 WHERE kind = 'facepay.outpatient.settle' AND business_key = 'SET-20240301-0001'
   AND result_type = 'settlement';
COMMIT;

-- 7. The patient returns the drugs: cancel the settlement (2208). With the
--    extension the core gives the personal account back in the same call.
INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
VALUES ('facepay.outpatient.cancel', 'CAN-20240301-0001', 'VISIT-20240301-0001',
'{"settle_key": "SET-20240301-0001", "with_extension": true, "reason": "患者退药"}');

-- Its result: a 'cancellation' row (amounts given back), and progress rows.
SELECT id, result_type, outcome, error_code, error_message, total_amount, account_amount, cash_amount, result_json
  FROM mi_inbox WHERE kind = 'facepay.outpatient.cancel' AND business_key = 'CAN-20240301-0001';

-- 8. A second visit at a self-service kiosk, in the Guangdong one-shot mode:
--    2260 (setl_flag 0) creates the visit at the core itself, so there is no
--    mdtrt_id and no chrg_bchno. Here the patient is given by the insurance
--    credential (person) instead of a face scan.
INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
VALUES ('facepay.document.presettle', 'PRE-20240301-0002', 'VISIT-20240301-0002',
'{"person": {"psn_no": "44000000000000000001", "insutype": "310", "insuplc_admdvs": "440100",
            "mdtrt_cert_type": "02", "mdtrt_cert_no": "440106199001010011"},
 "visit": {"ipt_otp_no": "OP0002", "begntime": "2024-03-01 14:00:00", "atddr_no": "D002", "dr_name": "王医生",
           "dept_code": "WK01", "dept_name": "外科", "caty": "A04",
           "diagnoses": [{"diag_type": "1", "diag_srt_no": "1", "diag_code": "S61.900", "diag_name": "手部开放性伤口",
                          "diag_dept": "外科", "dise_dor_no": "D002", "dise_dor_name": "王医生",
                          "diag_time": "2024-03-01 14:00:00", "vali_flag": "1"}]},
 "fees": [{"feedetl_sn": "B20240301002-1", "fee_ocur_time": "2024-03-01 14:10:00", "med_list_codg": "HL01",
           "medins_list_codg": "H-HL01", "det_item_fee_sumamt": "35.50", "cnt": "1", "pric": "35.50",
           "bilg_dept_codg": "WK01", "bilg_dept_name": "外科", "bilg_dr_codg": "D002", "bilg_dr_name": "王医生",
           "rx_circ_flag": "0"}],
 "total_amount": "35.50",
 "face_pay": true,
 "terminal": {"merchant_no": "102440100000004", "terminal_no": "00000143", "isv_no": "123456", "acct_type": "A02"},
 "retry_without_face_pay": true,
 "operator": {"id": "ZZJ01", "name": "自助机01", "type": "2"}}');

SELECT id, outcome, error_code, error_message, total_amount, fund_amount, account_amount, cash_amount, result_json
  FROM mi_inbox
 WHERE kind = 'facepay.document.presettle' AND business_key = 'PRE-20240301-0002'
   AND result_type = 'presettlement' AND consumed_at IS NULL;

INSERT INTO mi_inbox_consume (id, his_ack)
SELECT id, 'accepted' FROM mi_inbox
 WHERE kind = 'facepay.document.presettle' AND business_key = 'PRE-20240301-0002'
   AND result_type = 'presettlement' AND consumed_at IS NULL;

-- The settlement (2260 setl_flag 1); its row must be taken as in step 6. A
-- cancel would be facepay.document.cancel (2261) with settle_key and
-- with_extension, as in step 7.
INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
VALUES ('facepay.document.settle', 'SET-20240301-0002', 'VISIT-20240301-0002',
'{"presettle_key": "PRE-20240301-0002", "operator": {"id": "ZZJ01", "name": "自助机01", "type": "2"}}');

SELECT id, outcome, error_code, error_message, settlement_id, total_amount, fund_amount, account_amount,
       cash_amount, result_json
  FROM mi_inbox
 WHERE kind = 'facepay.document.settle' AND business_key = 'SET-20240301-0002'
   AND result_type = 'settlement' AND consumed_at IS NULL;

BEGIN;
-- UPDATE his_bill SET paid = 1 WHERE bill_no = 'B20240301002';   -- your HIS
INSERT INTO mi_inbox_consume (id, his_ack)
SELECT id, 'accepted' FROM mi_inbox
 WHERE kind = 'facepay.document.settle' AND business_key = 'SET-20240301-0002'
   AND result_type = 'settlement' AND consumed_at IS NULL;
SELECT his_ack AS must_be_accepted FROM mi_inbox
 WHERE kind = 'facepay.document.settle' AND business_key = 'SET-20240301-0002'
   AND result_type = 'settlement';
COMMIT;

-- Everything this script started, and what mibridge answered so far.
SELECT id, kind, business_key, serial_key, state, step, last_error_code
  FROM mi_outbox WHERE serial_key LIKE 'VISIT-20240301-000%' ORDER BY id;
SELECT id, kind, business_key, result_type, outcome, error_code, consumed_at, his_ack
  FROM mi_inbox WHERE business_key LIKE '%-20240301-000%' ORDER BY id;
