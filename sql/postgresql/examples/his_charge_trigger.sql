-- mibridge example: turn each new row of an HIS charge table into an outbox request.
-- psql -v ON_ERROR_STOP=1 -d hisdb -f sql/postgresql/examples/his_charge_trigger.sql
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
--     never a float.
--   * only charges (amount > 0) become requests: a refund or reversal row
--     (退费/冲红, amount < 0) is the cashier's own record and is left alone;
--     the money goes back through a refund request (docs/mobilepay.md).
-- The trigger runs in the HIS's transaction: if mibridge refuses the request
-- (bad amount, ...), the charge row is not inserted either, and the HIS sees
-- the 'mibridge: ...' error. The HIS's login needs only EXECUTE on mi_enqueue
-- (grants.sql), which runs with its owner's rights. Remove it with
--   DROP TRIGGER his_charge_mi_tg ON his_charge; DROP FUNCTION his_charge_mi();
CREATE TABLE his_charge (
    charge_no    VARCHAR(32)   PRIMARY KEY,
    visit_no     VARCHAR(32)   NOT NULL,
    patient_id   VARCHAR(32)   NOT NULL,
    amount       DECIMAL(12,2) NOT NULL,
    pay_auth_no  VARCHAR(64),
    created_at   TIMESTAMPTZ   NOT NULL DEFAULT now()
);

CREATE FUNCTION his_charge_mi() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mi_enqueue(
        'test.charge',                         -- kind
        NEW.charge_no,                         -- business_key
        NEW.visit_no,                          -- serial_key
        json_build_object(
            'charge_no',    NEW.charge_no,
            'visit_no',     NEW.visit_no,
            'patient_id',   NEW.patient_id,
            'total_amount', NEW.amount::text,      -- DECIMAL(12,2) -> '12.50'
            'pay_auth_no',  NEW.pay_auth_no)::text);
    RETURN NULL;
END $$;

CREATE TRIGGER his_charge_mi_tg AFTER INSERT ON his_charge
    FOR EACH ROW WHEN (NEW.amount > 0) EXECUTE FUNCTION his_charge_mi();
