-- mibridge example: one mobile payment (医保移动支付) from the HIS's side, by hand.
-- sqlite3 his.db < sql/sqlite/examples/mobilepay_enqueue.sql
-- or paste it step by step into sqlite3. docs/mobilepay.md explains every field and row.
--
-- What it does:
--   1. enqueues a payment (mobilepay.outpatient, business key MP-20240301-0001);
--   2. reads its 'order' row (what the mini-program needs) and consumes it;
--   3. reads its 'settlement' row (the patient has paid) and consumes it;
--   4. enqueues a partial refund (10.00 of the cash part) of that payment;
--   5. enqueues a second payment (a registration fee) and a revoke of it.
-- The daemon writes the order and settlement rows while it runs; steps 2 and 3
-- read nothing until it has (and until the patient has paid in the
-- mini-program). Running the whole file again is harmless: the same request
-- with the same payload is ignored, and the consume steps only touch rows that
-- are not consumed yet.
--
-- SQLite has no procedures: requests are plain INSERTs (mi_outbox's triggers
-- validate them), and consuming is the UPDATE shown at the top of install.sql.
--
-- To adapt it to your HIS:
--   * business keys: the payment's is your hospital order number (sent as
--     medOrgOrd), unique; a refund's is your refund serial (sent as appRefdSn,
--     at most 30 characters). A failed payment is enqueued again under a NEW key.
--   * serial keys: a payment's left out (= its own key); a refund's = the
--     payment's business key (required); a revoke's left out (never the
--     payment's key).
--   * pay_auth_no comes from the patient's authorisation in the mini-program.
--   * money as text with 2 decimals ('12.50'); total_amount = sum of the lines.

-- 1. The payment.
INSERT INTO mi_outbox (kind, business_key, payload)
VALUES ('mobilepay.outpatient', 'MP-20240301-0001',
'{"patient_id": "P0001", "visit_id": "OP20240301001",
 "pay_auth_no": "AUTH440100202403010930000001",
 "id_no": "440106199001010011", "user_name": "张三", "id_type": "01",
 "psn_no": "44000000000000000001", "insutype": "310", "insuplc_admdvs": "440100",
 "dept_code": "A03", "dept_name": "内科", "caty": "A03",
 "doctor_code": "D001", "doctor_name": "李医生",
 "diagnosis_code": "J06.900", "diagnosis_name": "上呼吸道感染",
 "visit_time": "2024-03-01 09:30:00",
 "total_amount": "120.00",
 "lines": [
  {"line_no": 1, "item_code": "H-XJ01", "national_code": "XJ01", "item_name": "血常规",
   "quantity": "1", "price": "20.00", "amount": "20.00"},
  {"line_no": 2, "item_code": "H-YP02", "national_code": "YP02", "item_name": "阿莫西林胶囊",
   "quantity": "2", "price": "50.00", "amount": "100.00"}]}');

-- Where it is: state pending -> running -> ... (step shows the flow's step).
SELECT id, kind, business_key, state, step, last_error_code, last_error_message
  FROM mi_outbox WHERE business_key = 'MP-20240301-0001';

-- 2. The order row: payOrdId, the split, and result_json.wechat for the
--    mini-program (pay_order_id, serial_no, the fees in fen).
SELECT id, order_id, total_amount, fund_amount, account_amount, cash_amount, result_json
  FROM mi_inbox
 WHERE kind = 'mobilepay.outpatient' AND business_key = 'MP-20240301-0001'
   AND result_type = 'order' AND consumed_at IS NULL;

-- Consume it once the mini-program has it. By id:
--   INSERT INTO mi_inbox_consume (id, his_ack) VALUES (42, 'accepted');
-- (SQLite has no procedures: the view's trigger refuses a missing row, one
-- already consumed, and a verdict other than 'accepted' or 'rejected'.)
INSERT INTO mi_inbox_consume (id, his_ack)
SELECT id, 'accepted' FROM mi_inbox
 WHERE kind = 'mobilepay.outpatient' AND business_key = 'MP-20240301-0001'
   AND result_type = 'order' AND consumed_at IS NULL;

-- 3. The settlement row: the patient has paid; the amounts actually paid.
SELECT id, order_id, settlement_id, total_amount, fund_amount, account_amount, cash_amount, result_json
  FROM mi_inbox
 WHERE kind = 'mobilepay.outpatient' AND business_key = 'MP-20240301-0001'
   AND result_type = 'settlement' AND consumed_at IS NULL;

-- Take it in the same transaction that marks the bill paid in the HIS, within
-- his_take_window_seconds (default 900 s). his_ack = 'rejected' instead makes
-- mibridge refund the whole payment. The row must then read
-- 'accepted': 'rejected' means the window had passed and mibridge is refunding,
-- so roll back: the bill is not paid.
BEGIN;
-- UPDATE his_bill SET paid = 1 WHERE bill_no = 'MP-20240301-0001';   -- your HIS
INSERT INTO mi_inbox_consume (id, his_ack)
SELECT id, 'accepted' FROM mi_inbox
 WHERE kind = 'mobilepay.outpatient' AND business_key = 'MP-20240301-0001'
   AND result_type = 'settlement' AND consumed_at IS NULL;
SELECT his_ack AS must_be_accepted FROM mi_inbox
 WHERE kind = 'mobilepay.outpatient' AND business_key = 'MP-20240301-0001'
   AND result_type = 'settlement';
COMMIT;

-- 4. A partial refund: 10.00 of the cash part. Cash can be refunded in parts,
--    the insurance part only whole; leave "amount" out to refund everything left.
--    serial_key = the payment's business key: the refund waits for the payment.
INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
VALUES ('mobilepay.refund', 'RF-20240301-0001', 'MP-20240301-0001',
'{"payment_key": "MP-20240301-0001", "amount": "10.00", "refund_type": "CASH", "reason": "退药"}');

-- Its result: a 'refund' row (or an 'error' row with the reason).
SELECT id, result_type, outcome, error_code, error_message, total_amount, cash_amount, result_json
  FROM mi_inbox WHERE kind = 'mobilepay.refund' AND business_key = 'RF-20240301-0001';

-- 5. A registration fee the patient will not pay, and its revoke (6401).
--    A revoke works only before the patient pays; after that, refund.
INSERT INTO mi_outbox (kind, business_key, payload)
VALUES ('mobilepay.registration', 'MP-20240301-0002',
'{"patient_id": "P0001", "visit_id": "OP20240301002",
 "pay_auth_no": "AUTH440100202403010931000002",
 "id_no": "440106199001010011", "user_name": "张三",
 "psn_no": "44000000000000000001", "insutype": "310", "insuplc_admdvs": "440100",
 "dept_code": "A03", "dept_name": "内科", "caty": "A03",
 "total_amount": "12.00",
 "lines": [{"line_no": 1, "item_code": "H-GH01", "item_name": "普通门诊诊查费",
            "quantity": "1", "price": "12.00", "amount": "12.00"}]}');

INSERT INTO mi_outbox (kind, business_key, payload)
VALUES ('mobilepay.revoke', 'RV-20240301-0002',
'{"payment_key": "MP-20240301-0002"}');

-- Everything this script started, and what mibridge answered so far.
SELECT id, kind, business_key, serial_key, state, step, last_error_code
  FROM mi_outbox WHERE business_key LIKE '%-20240301-000%' ORDER BY id;
SELECT id, kind, business_key, result_type, outcome, error_code, consumed_at, his_ack
  FROM mi_inbox WHERE business_key LIKE '%-20240301-000%' ORDER BY id;
