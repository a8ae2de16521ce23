-- mibridge example: turn each new row of an HIS charge table into an outbox request.
-- Run connected as the schema that owns the mi_ objects (see ../install.sql):
--   sqlplus his@//dbhost:1521/HISPDB @sql/oracle/examples/his_charge_trigger.sql
--
-- To adapt it to your HIS:
--   * his_charge below only stands in for your real charge table: skip its
--     CREATE TABLE and put your table and column names in the trigger.
--   * kind: the flow that handles the request ('test.charge' is the test flow;
--     use the kind your deployment runs).
--   * business_key: what makes the request unique in your HIS (here the charge
--     number). Re-inserting the same key with the same payload is harmless;
--     with a different payload mi_enqueue refuses it (ORA-20010).
--   * serial_key: requests with the same serial key run one after the other
--     (here all charges of one visit).
--   * payload: a JSON object; money as a string with 2 decimals ('12.50'),
--     never a float. Oracle 12.1 has no JSON_OBJECT, so the text is built by
--     hand and js() quotes each value; on 12.2+ you may use
--     JSON_OBJECT('charge_no' VALUE :NEW.charge_no, ...) instead.
--   * only charges (amount > 0) become requests: a refund or reversal row
--     (退费/冲红, amount < 0) is the cashier's own record and is left alone;
--     the money goes back through a refund request (docs/mobilepay.md).
-- The trigger runs in the HIS's transaction: if mibridge refuses the request
-- (bad amount, ...), the INSERT of the charge row fails with the
-- 'mibridge: ...' error and nothing is kept. Remove it with
--   DROP TRIGGER his_charge_mi_tg
CREATE TABLE his_charge (
    charge_no    VARCHAR2(32 CHAR)  NOT NULL,
    visit_no     VARCHAR2(32 CHAR)  NOT NULL,
    patient_id   VARCHAR2(32 CHAR)  NOT NULL,
    amount       NUMBER(12,2)       NOT NULL,
    pay_auth_no  VARCHAR2(64 CHAR),
    created_at   TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
    CONSTRAINT his_charge_pk PRIMARY KEY (charge_no)
)
/
CREATE OR REPLACE TRIGGER his_charge_mi_tg
AFTER INSERT ON his_charge
FOR EACH ROW
WHEN (NEW.amount > 0)
DECLARE
    v_outbox_id NUMBER;
    -- A JSON string (or null) for one text value.
    FUNCTION js(p IN VARCHAR2) RETURN VARCHAR2 IS
    BEGIN
        IF p IS NULL THEN
            RETURN 'null';
        END IF;
        RETURN '"' || REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(p, '\', '\\'), '"', '\"'),
                                              CHR(10), '\n'), CHR(13), '\r'), CHR(9), '\t') || '"';
    END;
BEGIN
    mi_enqueue(
        'test.charge',                         -- kind
        :NEW.charge_no,                        -- business_key
        :NEW.visit_no,                         -- serial_key
        '{"charge_no":'     || js(:NEW.charge_no)
        || ',"visit_no":'   || js(:NEW.visit_no)
        || ',"patient_id":' || js(:NEW.patient_id)
        -- The format's '.' is always a period, whatever the NLS settings.
        || ',"total_amount":' || js(TO_CHAR(:NEW.amount, 'FM999999999990.00'))
        || ',"pay_auth_no":'  || js(:NEW.pay_auth_no)
        || '}',
        v_outbox_id);
END;
/
