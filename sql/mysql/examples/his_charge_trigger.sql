-- mibridge example: turn each new row of an HIS charge table into an outbox request.
-- mysql --database=hisdb < sql/mysql/examples/his_charge_trigger.sql
--
-- To adapt it to your HIS:
--   * his_charge below only stands in for your real charge table: skip its
--     CREATE TABLE and put your table and column names in the trigger.
--   * kind: the flow that handles the request ('test.charge' is the test flow;
--     use the kind your deployment runs).
--   * business_key: what makes the request unique in your HIS (here the charge
--     number). Re-inserting the same key with the same payload is harmless;
--     with a different payload mi_enqueue refuses it.
--   * serial_key: requests with the same serial key run one after the other
--     (here all charges of one visit).
--   * payload: a JSON object; money as a string with 2 decimals ('12.50'),
--     never a float: CAST(amount AS CHAR) of a DECIMAL(x,2) column gives that.
--   * only charges (amount > 0) become requests: a refund or reversal row
--     (退费/冲红, amount < 0) is the cashier's own record and is left alone;
--     the money goes back through a refund request (docs/mobilepay.md).
-- The trigger runs in the HIS's statement: if mibridge refuses the request
-- (bad amount, ...), the charge row is not inserted either, and the HIS sees
-- the 'mibridge: ...' error. Remove it with DROP TRIGGER his_charge_mi_tg;
CREATE TABLE his_charge (
    charge_no    VARCHAR(32)   NOT NULL PRIMARY KEY,
    visit_no     VARCHAR(32)   NOT NULL,
    patient_id   VARCHAR(32)   NOT NULL,
    amount       DECIMAL(12,2) NOT NULL,
    pay_auth_no  VARCHAR(64),
    created_at   DATETIME(6)   NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

DELIMITER //
CREATE TRIGGER his_charge_mi_tg AFTER INSERT ON his_charge FOR EACH ROW
BEGIN
    DECLARE v_outbox_id BIGINT;
    IF NEW.amount > 0 THEN
        CALL mi_enqueue(
            'test.charge',                         -- kind
            NEW.charge_no,                         -- business_key
            NEW.visit_no,                          -- serial_key
            JSON_OBJECT(
                'charge_no',    NEW.charge_no,
                'visit_no',     NEW.visit_no,
                'patient_id',   NEW.patient_id,
                'total_amount', CAST(NEW.amount AS CHAR),
                'pay_auth_no',  NEW.pay_auth_no),
            v_outbox_id);
    END IF;
END //
DELIMITER ;
