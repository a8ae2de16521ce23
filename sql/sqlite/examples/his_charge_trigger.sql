-- mibridge example: turn each new row of an HIS charge table into an outbox request.
-- sqlite3 his.db < sql/sqlite/examples/his_charge_trigger.sql
--
-- To adapt it to your HIS:
--   * his_charge below only stands in for your real charge table: skip its
--     CREATE TABLE and put your table and column names in the trigger.
--   * kind: the flow that handles the request ('test.charge' is the test flow;
--     use the kind your deployment runs).
--   * business_key: what makes the request unique in your HIS (here the charge
--     number). Re-inserting the same key with the same payload is ignored;
--     with a different payload mibridge's trigger refuses it.
--   * serial_key: requests with the same serial key run one after the other
--     (here all charges of one visit).
--   * payload: a JSON object; money as a string with 2 decimals ('12.50'),
--     never a float. An amount with more than 2 decimals is passed on as it
--     is, so mibridge refuses it instead of it being silently rounded.
--   * only charges (amount > 0) become requests: a refund or reversal row
--     (退费/冲红, amount < 0) is the cashier's own record and is left alone;
--     the money goes back through a refund request (docs/mobilepay.md).
-- SQLite has no procedures: the trigger INSERTs into mi_outbox, and
-- mi_outbox's own triggers validate the row. If mibridge refuses the request
-- (bad amount, ...), the charge row is not inserted either, and the HIS sees
-- the 'mibridge: ...' error. Remove it with DROP TRIGGER his_charge_mi_tg;
CREATE TABLE his_charge (
    charge_no    TEXT    PRIMARY KEY,
    visit_no     TEXT    NOT NULL,
    patient_id   TEXT    NOT NULL,
    amount       NUMERIC NOT NULL,
    pay_auth_no  TEXT,
    created_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now'))
);

CREATE TRIGGER his_charge_mi_tg AFTER INSERT ON his_charge
WHEN NEW.amount > 0
BEGIN
    INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
    VALUES ('test.charge',                     -- kind
            NEW.charge_no,                     -- business_key
            NEW.visit_no,                      -- serial_key
            json_object(
                'charge_no',    NEW.charge_no,
                'visit_no',     NEW.visit_no,
                'patient_id',   NEW.patient_id,
                'total_amount', CASE WHEN round(NEW.amount, 2) = NEW.amount
                                     THEN printf('%.2f', NEW.amount)
                                     ELSE CAST(NEW.amount AS TEXT) END,
                'pay_auth_no',  NEW.pay_auth_no));
END;
