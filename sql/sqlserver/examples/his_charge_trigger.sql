-- mibridge example: turn each new row of an HIS charge table into an outbox request.
-- sqlcmd -S dbhost -d hisdb -b -I -i sql/sqlserver/examples/his_charge_trigger.sql
--
-- To adapt it to your HIS:
--   * his_charge below only stands in for your real charge table: skip its
--     CREATE TABLE and put your table and column names in the trigger.
--   * kind: the flow that handles the request ('test.charge' is the test flow;
--     use the kind your deployment runs).
--   * business_key: what makes the request unique in your HIS (here the charge
--     number); serial_key: requests with the same serial key run one after
--     the other (here all charges of one visit).
--   * payload: a JSON object; money as a string with 2 decimals ('12.50'),
--     never a float: CAST of a DECIMAL(x,2) column to NVARCHAR gives that.
--     FOR JSON (2016+) quotes every value correctly.
--   * only charges (amount > 0) become requests: a refund or reversal row
--     (退费/冲红, amount < 0) is the cashier's own record and is left alone;
--     the money goes back through a refund request (docs/mobilepay.md).
-- SQL Server triggers fire once per statement, so this one inserts every new
-- charge row at once with a plain INSERT; mi_outbox's own trigger validates
-- each row. (A plain INSERT of an existing (kind, business_key) is a
-- unique-key error; call mi_enqueue row by row if the HIS may repeat one.)
-- The trigger runs in the HIS's transaction: if mibridge refuses a request
-- (bad amount, ...), the HIS's INSERT fails with the 'mibridge: ...' error
-- and nothing is kept. Remove it with DROP TRIGGER his_charge_mi_tg;
CREATE TABLE his_charge (
    charge_no    NVARCHAR(32)  NOT NULL PRIMARY KEY,
    visit_no     NVARCHAR(32)  NOT NULL,
    patient_id   NVARCHAR(32)  NOT NULL,
    amount       DECIMAL(12,2) NOT NULL,
    pay_auth_no  NVARCHAR(64),
    created_at   DATETIME2(6)  NOT NULL DEFAULT SYSUTCDATETIME()
);
GO

CREATE TRIGGER his_charge_mi_tg ON his_charge
AFTER INSERT
AS
BEGIN
    -- The trigger runs in the HIS's session: set what it relies on, whatever
    -- the HIS client sent (old clients run with these off).
    SET NOCOUNT ON;
    SET ANSI_WARNINGS ON;
    SET ARITHABORT ON;
    SET CONCAT_NULL_YIELDS_NULL ON;
    SET ANSI_PADDING ON;
    INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
    SELECT N'test.charge',                     -- kind
           i.charge_no,                        -- business_key
           i.visit_no,                         -- serial_key
           (SELECT i.charge_no AS charge_no, i.visit_no AS visit_no, i.patient_id AS patient_id,
                   CAST(i.amount AS NVARCHAR(20)) AS total_amount, i.pay_auth_no AS pay_auth_no
               FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES)
      FROM inserted i
     WHERE i.amount > 0;
END;
GO
