-- mibridge migration 004: the order book and daily reconciliation (docs/reconciliation.md).
-- Run by hand (WHENEVER SQLERROR EXIT FAILURE first):
--   sqlplus his@//dbhost:1521/HISPDB @sql/oracle/migrations/004_reconciliation.sql
-- Oracle commits each DDL statement: this file can simply be run again (a table or index
-- an earlier run made is kept, views are replaced, the bookings skip what is booked).
--
-- mi_order: one row per payment (a mobile-pay order, a face-pay or kiosk settlement), kept by
-- the daemon from the inbox rows it writes, in the same transaction (bridge/db/orderbook.py).
-- mi_order_refund: one row per refund, reversal or cancellation of a payment. Purge never
-- deletes either: a refund of a purged payment still finds the payment's totals here.
-- mi_recon_run / mi_recon_item / mi_channel_bill: the daily reconciliation's runs, its per order
-- and leg results, and the channels' bill rows it compared. Views show the latest completed run
-- of each day and platform; a run killed half way never shows.
-- Days (settle_day, refund_day, recon_day) are yyyy-MM-dd in China time (UTC+8, no DST).
BEGIN
    EXECUTE IMMEDIATE 'CREATE TABLE mi_order (
        id               NUMBER(19)    GENERATED ALWAYS AS IDENTITY (ORDER),
        platform         VARCHAR2(16 CHAR)   NOT NULL,
        channel          VARCHAR2(16 CHAR)   NOT NULL,
        kind             VARCHAR2(40 CHAR)   NOT NULL,
        business_key     VARCHAR2(64 CHAR)   NOT NULL,
        outbox_id        NUMBER(19)          NOT NULL,
        inbox_id         NUMBER(19),
        platform_order_id VARCHAR2(64 CHAR)  NOT NULL,
        settlement_id    VARCHAR2(64 CHAR),
        mix_trade_no     VARCHAR2(64 CHAR),
        out_trade_no     VARCHAR2(64 CHAR),
        trade_no         VARCHAR2(64 CHAR),
        psn_no           VARCHAR2(40 CHAR),
        mdtrt_id         VARCHAR2(64 CHAR),
        insutype         VARCHAR2(12 CHAR),
        clr_type         VARCHAR2(12 CHAR),
        setl_optins      VARCHAR2(12 CHAR),
        ref_no           VARCHAR2(64 CHAR),
        term_seq_no      VARCHAR2(64 CHAR),
        status           VARCHAR2(16 CHAR)   DEFAULT ''paid'' NOT NULL,
        total_amount     NUMBER(16,2)        NOT NULL,
        fund_amount      NUMBER(16,2)        NOT NULL,
        account_amount   NUMBER(16,2)        NOT NULL,
        cash_amount      NUMBER(16,2)        NOT NULL,
        refunded_total   NUMBER(16,2)        DEFAULT 0 NOT NULL,
        refunded_fund    NUMBER(16,2)        DEFAULT 0 NOT NULL,
        refunded_account NUMBER(16,2)        DEFAULT 0 NOT NULL,
        refunded_cash    NUMBER(16,2)        DEFAULT 0 NOT NULL,
        refund_count     NUMBER(10)          DEFAULT 0 NOT NULL,
        settle_day       VARCHAR2(10 CHAR)   NOT NULL,
        settled_at       TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
        last_refund_at   TIMESTAMP WITH TIME ZONE,
        updated_at       TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
        CONSTRAINT mi_order_pk PRIMARY KEY (id),
        CONSTRAINT mi_order_key UNIQUE (platform_order_id, platform),
        CONSTRAINT mi_order_status_ck CHECK (status IN (''paid'',''partly_refunded'',''refunded'',''reversed'',''cancelled''))
    )';
EXCEPTION
    WHEN OTHERS THEN
        -- ORA-00955 / ORA-01408: an earlier run of this migration made it.
        IF SQLCODE NOT IN (-955, -1408) THEN
            RAISE;
        END IF;
END;
/
BEGIN
    EXECUTE IMMEDIATE 'CREATE INDEX mi_order_day_ix ON mi_order (settle_day, platform, id)';
EXCEPTION
    WHEN OTHERS THEN
        -- ORA-00955 / ORA-01408: an earlier run of this migration made it.
        IF SQLCODE NOT IN (-955, -1408) THEN
            RAISE;
        END IF;
END;
/
BEGIN
    EXECUTE IMMEDIATE 'CREATE INDEX mi_order_business_ix ON mi_order (business_key)';
EXCEPTION
    WHEN OTHERS THEN
        -- ORA-00955 / ORA-01408: an earlier run of this migration made it.
        IF SQLCODE NOT IN (-955, -1408) THEN
            RAISE;
        END IF;
END;
/
BEGIN
    EXECUTE IMMEDIATE 'CREATE INDEX mi_order_trade_ix ON mi_order (out_trade_no)';
EXCEPTION
    WHEN OTHERS THEN
        -- ORA-00955 / ORA-01408: an earlier run of this migration made it.
        IF SQLCODE NOT IN (-955, -1408) THEN
            RAISE;
        END IF;
END;
/
BEGIN
    EXECUTE IMMEDIATE 'CREATE TABLE mi_order_refund (
        id               NUMBER(19)    GENERATED ALWAYS AS IDENTITY (ORDER),
        order_ref        NUMBER(19),
        platform         VARCHAR2(16 CHAR)   NOT NULL,
        platform_order_id VARCHAR2(64 CHAR)  NOT NULL,
        refund_type      VARCHAR2(16 CHAR)   NOT NULL,
        kind             VARCHAR2(40 CHAR)   NOT NULL,
        business_key     VARCHAR2(64 CHAR)   NOT NULL,
        outbox_id        NUMBER(19)          NOT NULL,
        inbox_id         NUMBER(19),
        refund_ref       VARCHAR2(64 CHAR),
        out_refund_no    VARCHAR2(64 CHAR),
        state            VARCHAR2(16 CHAR)   DEFAULT ''booked'' NOT NULL,
        total_amount     NUMBER(16,2)        NOT NULL,
        fund_amount      NUMBER(16,2)        NOT NULL,
        account_amount   NUMBER(16,2)        NOT NULL,
        cash_amount      NUMBER(16,2)        NOT NULL,
        refund_day       VARCHAR2(10 CHAR)   NOT NULL,
        refunded_at      TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
        CONSTRAINT mi_order_refund_pk PRIMARY KEY (id),
        CONSTRAINT mi_order_refund_key UNIQUE (outbox_id, refund_type, platform_order_id),
        CONSTRAINT mi_order_refund_type_ck CHECK (refund_type IN (''refund'',''reversal'',''cancellation'')),
        CONSTRAINT mi_order_refund_state_ck CHECK (state IN (''booked'',''unmatched''))
    )';
EXCEPTION
    WHEN OTHERS THEN
        -- ORA-00955 / ORA-01408: an earlier run of this migration made it.
        IF SQLCODE NOT IN (-955, -1408) THEN
            RAISE;
        END IF;
END;
/
BEGIN
    EXECUTE IMMEDIATE 'CREATE INDEX mi_order_refund_order_ix ON mi_order_refund (order_ref)';
EXCEPTION
    WHEN OTHERS THEN
        -- ORA-00955 / ORA-01408: an earlier run of this migration made it.
        IF SQLCODE NOT IN (-955, -1408) THEN
            RAISE;
        END IF;
END;
/
BEGIN
    EXECUTE IMMEDIATE 'CREATE INDEX mi_order_refund_day_ix ON mi_order_refund (refund_day, platform, id)';
EXCEPTION
    WHEN OTHERS THEN
        -- ORA-00955 / ORA-01408: an earlier run of this migration made it.
        IF SQLCODE NOT IN (-955, -1408) THEN
            RAISE;
        END IF;
END;
/
BEGIN
    EXECUTE IMMEDIATE 'CREATE INDEX mi_order_refund_platform_ix ON mi_order_refund (platform_order_id)';
EXCEPTION
    WHEN OTHERS THEN
        -- ORA-00955 / ORA-01408: an earlier run of this migration made it.
        IF SQLCODE NOT IN (-955, -1408) THEN
            RAISE;
        END IF;
END;
/
BEGIN
    EXECUTE IMMEDIATE 'CREATE TABLE mi_recon_run (
        id               NUMBER(19)    GENERATED ALWAYS AS IDENTITY (ORDER),
        recon_day        VARCHAR2(10 CHAR)   NOT NULL,
        platform         VARCHAR2(16 CHAR)   NOT NULL,
        state            VARCHAR2(16 CHAR)   DEFAULT ''running'' NOT NULL,
        active_key       VARCHAR2(40 CHAR)   NOT NULL,
        owner            VARCHAR2(80 CHAR)   NOT NULL,
        step             VARCHAR2(40 CHAR),
        progress_done    NUMBER(10)          DEFAULT 0 NOT NULL,
        progress_total   NUMBER(10),
        balanced         NUMBER(1),
        items_total      NUMBER(10)          DEFAULT 0 NOT NULL,
        items_differ     NUMBER(10)          DEFAULT 0 NOT NULL,
        digest           VARCHAR2(64 CHAR),
        report_outbox_id NUMBER(19),
        detail_json      CLOB,
        error_message    VARCHAR2(1000 CHAR),
        started_at       TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
        heartbeat_at     TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL,
        finished_at      TIMESTAMP WITH TIME ZONE,
        CONSTRAINT mi_recon_run_pk PRIMARY KEY (id),
        CONSTRAINT mi_recon_run_active UNIQUE (active_key),
        CONSTRAINT mi_recon_run_state_ck CHECK (state IN (''running'',''done'',''failed'',''abandoned''))
    )';
EXCEPTION
    WHEN OTHERS THEN
        -- ORA-00955 / ORA-01408: an earlier run of this migration made it.
        IF SQLCODE NOT IN (-955, -1408) THEN
            RAISE;
        END IF;
END;
/
BEGIN
    EXECUTE IMMEDIATE 'CREATE INDEX mi_recon_run_day_ix ON mi_recon_run (recon_day, platform, state)';
EXCEPTION
    WHEN OTHERS THEN
        -- ORA-00955 / ORA-01408: an earlier run of this migration made it.
        IF SQLCODE NOT IN (-955, -1408) THEN
            RAISE;
        END IF;
END;
/
BEGIN
    EXECUTE IMMEDIATE 'CREATE TABLE mi_recon_item (
        id               NUMBER(19)    GENERATED ALWAYS AS IDENTITY (ORDER),
        run_id           NUMBER(19)          NOT NULL,
        order_key        VARCHAR2(64 CHAR)   NOT NULL,
        leg              VARCHAR2(16 CHAR)   NOT NULL,
        diff_class       VARCHAR2(16 CHAR)   NOT NULL,
        order_ref        NUMBER(19),
        business_key     VARCHAR2(64 CHAR),
        channel          VARCHAR2(16 CHAR),
        channel_ref      VARCHAR2(64 CHAR),
        hospital_amount  NUMBER(16,2),
        platform_amount  NUMBER(16,2),
        channel_amount   NUMBER(16,2),
        hospital_state   VARCHAR2(40 CHAR),
        platform_state   VARCHAR2(40 CHAR),
        source           VARCHAR2(16 CHAR)   NOT NULL,
        note             VARCHAR2(1000 CHAR),
        CONSTRAINT mi_recon_item_pk PRIMARY KEY (id),
        CONSTRAINT mi_recon_item_key UNIQUE (run_id, order_key, leg),
        CONSTRAINT mi_recon_item_run_fk FOREIGN KEY (run_id) REFERENCES mi_recon_run (id),
        CONSTRAINT mi_recon_item_class_ck CHECK (diff_class IN (''balanced'',''hospital_only'',''platform_only'',
                                                                ''channel_only'',''amount_differs'',''unchecked''))
    )';
EXCEPTION
    WHEN OTHERS THEN
        -- ORA-00955 / ORA-01408: an earlier run of this migration made it.
        IF SQLCODE NOT IN (-955, -1408) THEN
            RAISE;
        END IF;
END;
/
BEGIN
    EXECUTE IMMEDIATE 'CREATE INDEX mi_recon_item_ref_ix ON mi_recon_item (run_id, channel_ref)';
EXCEPTION
    WHEN OTHERS THEN
        -- ORA-00955 / ORA-01408: an earlier run of this migration made it.
        IF SQLCODE NOT IN (-955, -1408) THEN
            RAISE;
        END IF;
END;
/
BEGIN
    EXECUTE IMMEDIATE 'CREATE TABLE mi_channel_bill (
        id               NUMBER(19)    GENERATED ALWAYS AS IDENTITY (ORDER),
        run_id           NUMBER(19)          NOT NULL,
        channel          VARCHAR2(16 CHAR)   NOT NULL,
        bill_day         VARCHAR2(10 CHAR)   NOT NULL,
        line_no          NUMBER(10)          NOT NULL,
        row_type         VARCHAR2(16 CHAR)   NOT NULL,
        out_trade_no     VARCHAR2(64 CHAR)   NOT NULL,
        trade_no         VARCHAR2(64 CHAR),
        out_refund_no    VARCHAR2(64 CHAR),
        refund_id        VARCHAR2(64 CHAR),
        amount           NUMBER(16,2)        NOT NULL,
        trade_state      VARCHAR2(32 CHAR),
        trade_time       VARCHAR2(19 CHAR),
        CONSTRAINT mi_channel_bill_pk PRIMARY KEY (id),
        CONSTRAINT mi_channel_bill_line UNIQUE (run_id, channel, line_no),
        CONSTRAINT mi_channel_bill_run_fk FOREIGN KEY (run_id) REFERENCES mi_recon_run (id)
    )';
EXCEPTION
    WHEN OTHERS THEN
        -- ORA-00955 / ORA-01408: an earlier run of this migration made it.
        IF SQLCODE NOT IN (-955, -1408) THEN
            RAISE;
        END IF;
END;
/
BEGIN
    EXECUTE IMMEDIATE 'CREATE INDEX mi_channel_bill_trade_ix ON mi_channel_bill (run_id, out_trade_no)';
EXCEPTION
    WHEN OTHERS THEN
        -- ORA-00955 / ORA-01408: an earlier run of this migration made it.
        IF SQLCODE NOT IN (-955, -1408) THEN
            RAISE;
        END IF;
END;
/
-- The order book: one row per payment, its refunds summed per leg, the latest refund request.
CREATE OR REPLACE VIEW mi_v_orders AS
SELECT o.id AS order_id, o.platform, o.channel, o.kind, o.business_key, o.platform_order_id, o.settlement_id,
       o.mix_trade_no, o.out_trade_no, o.trade_no, o.status,
       o.total_amount, o.fund_amount, o.account_amount, o.cash_amount,
       o.refunded_total, o.refunded_fund, o.refunded_account, o.refunded_cash,
       o.total_amount - o.refunded_total AS net_amount, o.refund_count,
       (SELECT r.business_key FROM mi_order_refund r
         WHERE r.id = (SELECT MAX(x.id) FROM mi_order_refund x WHERE x.order_ref = o.id)) AS last_refund_key,
       o.last_refund_at, o.settle_day, o.settled_at, o.psn_no, o.mdtrt_id, o.insutype, o.clr_type,
       o.setl_optins, o.ref_no, o.term_seq_no, o.outbox_id, o.updated_at
  FROM mi_order o
/
CREATE OR REPLACE VIEW mi_v_order_refunds AS
SELECT r.id AS refund_id, r.order_ref AS order_id, o.business_key AS payment_key, r.platform,
       r.platform_order_id, r.refund_type, r.kind, r.business_key, r.refund_ref, r.out_refund_no, r.state,
       r.total_amount, r.fund_amount, r.account_amount, r.cash_amount, r.refund_day, r.refunded_at, r.outbox_id
  FROM mi_order_refund r LEFT JOIN mi_order o ON o.id = r.order_ref
/
-- The latest completed run of each day and platform, one row per order and leg.
CREATE OR REPLACE VIEW mi_v_reconciliation AS
SELECT r.recon_day, r.platform, r.id AS run_id, i.order_key, i.business_key, i.channel, i.channel_ref, i.leg,
       i.diff_class, i.hospital_amount, i.platform_amount, i.channel_amount, i.hospital_state,
       i.platform_state, i.source, i.note, i.order_ref AS order_id
  FROM mi_recon_item i JOIN mi_recon_run r ON r.id = i.run_id
 WHERE r.state = 'done'
   AND r.id = (SELECT MAX(x.id) FROM mi_recon_run x
                WHERE x.recon_day = r.recon_day AND x.platform = r.platform AND x.state = 'done')
/
-- What a person must look at: every difference of the latest completed runs, with what to do.
CREATE OR REPLACE VIEW mi_v_recon_review AS
SELECT v.recon_day, v.platform, v.run_id, v.order_key, v.business_key, v.channel, v.channel_ref, v.leg,
       v.diff_class, v.hospital_amount, v.platform_amount, v.channel_amount, v.hospital_state,
       v.platform_state, v.source, v.note, v.order_id,
       CASE v.diff_class
           WHEN 'hospital_only' THEN 'booked by the hospital, missing at the platform or channel: check there before billing again'
           WHEN 'platform_only' THEN 'booked at the platform, unknown to the hospital: find the request, bill or refund it'
           WHEN 'channel_only' THEN 'money moved in the channel, unknown to the hospital: find the order, refund or book it'
           WHEN 'amount_differs' THEN 'amounts differ: compare the columns, correct the wrong side'
           ELSE 'not compared: see the note, then reconcile again'
       END AS action
  FROM mi_v_reconciliation v
 WHERE v.diff_class <> 'balanced'
/
-- The daily check: the latest finished run of each day and platform.
CREATE OR REPLACE VIEW mi_v_recon_days AS
SELECT r.recon_day, r.platform, r.id AS run_id, r.state, r.balanced, r.items_total, r.items_differ,
       r.started_at, r.finished_at, r.error_message
  FROM mi_recon_run r
 WHERE r.id = (SELECT MAX(x.id) FROM mi_recon_run x
                WHERE x.recon_day = r.recon_day AND x.platform = r.platform AND x.state IN ('done', 'failed'))
/
-- Book what the previous releases wrote: every successful settlement row of a mobile-pay or
-- face-pay request (the first one per order), then its refunds, reversals and cancellations.
-- Their day is the day the inbox row was written (the platform's own time was not kept).
-- Each statement skips what a previous run of this file booked.
INSERT INTO mi_order (platform, channel, kind, business_key, outbox_id, inbox_id, platform_order_id, settlement_id,
                      total_amount, fund_amount, account_amount, cash_amount, settle_day, settled_at, updated_at)
SELECT CASE WHEN i.kind LIKE 'mobilepay.%' THEN 'mobilepay' WHEN i.kind LIKE 'kiosk.%' THEN 'kiosk' ELSE 'facepay' END,
       CASE WHEN i.kind LIKE 'mobilepay.%' THEN 'unknown' ELSE 'none' END,
       i.kind, i.business_key, i.outbox_id, i.id, COALESCE(i.order_id, i.settlement_id), i.settlement_id,
       COALESCE(i.total_amount, 0), COALESCE(i.fund_amount, 0), COALESCE(i.account_amount, 0),
       COALESCE(i.cash_amount, 0), TO_CHAR(i.created_at AT TIME ZONE '+08:00', 'YYYY-MM-DD'),
       i.created_at, i.created_at
  FROM mi_inbox i
 WHERE i.id IN (SELECT MIN(x.id) FROM mi_inbox x
                 WHERE x.result_type = 'settlement' AND x.outcome = 'ok'
                   AND COALESCE(x.order_id, x.settlement_id) IS NOT NULL
                   AND (x.kind LIKE 'mobilepay.%' OR x.kind LIKE 'facepay.%' OR x.kind LIKE 'kiosk.%')
                 GROUP BY COALESCE(x.order_id, x.settlement_id))
   AND NOT EXISTS (SELECT 1 FROM mi_order b WHERE b.platform_order_id = COALESCE(i.order_id, i.settlement_id))
/
INSERT INTO mi_order_refund (order_ref, platform, platform_order_id, refund_type, kind, business_key, outbox_id,
                             inbox_id, refund_ref, total_amount, fund_amount, account_amount, cash_amount,
                             refund_day, refunded_at)
SELECT o.id, o.platform, o.platform_order_id,
       CASE i.result_type WHEN 'refund' THEN 'refund' WHEN 'cancellation' THEN 'cancellation' ELSE 'reversal' END,
       i.kind, i.business_key, i.outbox_id, i.id, i.settlement_id,
       ABS(COALESCE(i.total_amount, 0)), ABS(COALESCE(i.fund_amount, 0)), ABS(COALESCE(i.account_amount, 0)),
       ABS(COALESCE(i.cash_amount, 0)), TO_CHAR(i.created_at AT TIME ZONE '+08:00', 'YYYY-MM-DD'),
       i.created_at
  FROM mi_inbox i JOIN mi_order o ON o.platform_order_id = COALESCE(i.order_id, i.settlement_id)
 WHERE ((i.result_type IN ('refund', 'cancellation') AND i.outcome = 'ok')
        OR (i.result_type = 'reversal' AND i.outcome IN ('ok', 'failed')))
   AND NOT EXISTS (SELECT 1 FROM mi_order_refund b
                    WHERE b.outbox_id = i.outbox_id AND b.platform_order_id = o.platform_order_id
                      AND b.refund_type = CASE i.result_type WHEN 'refund' THEN 'refund'
                                               WHEN 'cancellation' THEN 'cancellation' ELSE 'reversal' END)
/
UPDATE mi_order SET
    refunded_total = (SELECT SUM(r.total_amount) FROM mi_order_refund r WHERE r.order_ref = mi_order.id),
    refunded_fund = (SELECT SUM(r.fund_amount) FROM mi_order_refund r WHERE r.order_ref = mi_order.id),
    refunded_account = (SELECT SUM(r.account_amount) FROM mi_order_refund r WHERE r.order_ref = mi_order.id),
    refunded_cash = (SELECT SUM(r.cash_amount) FROM mi_order_refund r WHERE r.order_ref = mi_order.id),
    refund_count = (SELECT COUNT(*) FROM mi_order_refund r WHERE r.order_ref = mi_order.id),
    last_refund_at = (SELECT MAX(r.refunded_at) FROM mi_order_refund r WHERE r.order_ref = mi_order.id),
    status = CASE
        WHEN EXISTS (SELECT 1 FROM mi_order_refund r WHERE r.order_ref = mi_order.id AND r.refund_type = 'reversal')
            THEN 'reversed'
        WHEN EXISTS (SELECT 1 FROM mi_order_refund r WHERE r.order_ref = mi_order.id AND r.refund_type = 'cancellation')
            THEN 'cancelled'
        WHEN (SELECT SUM(r.total_amount) FROM mi_order_refund r WHERE r.order_ref = mi_order.id) >= total_amount
            THEN 'refunded'
        ELSE 'partly_refunded' END
 WHERE EXISTS (SELECT 1 FROM mi_order_refund r WHERE r.order_ref = mi_order.id)
/
INSERT INTO mi_schema_version (version, name)
SELECT 4, '004_reconciliation' FROM dual WHERE NOT EXISTS (SELECT 1 FROM mi_schema_version WHERE version = 4)
/
COMMIT
/
