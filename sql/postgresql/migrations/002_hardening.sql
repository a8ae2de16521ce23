-- mibridge migration 002 (hardening) for PostgreSQL: from schema version 1
-- (the release installed by 001_baseline.sql) to version 2.
-- Normally run by `mibridge db upgrade --url ...`, which runs each missing
-- migration in its own transaction. By hand:
--   psql -1 -v ON_ERROR_STOP=1 -d hisdb -f sql/postgresql/migrations/002_hardening.sql
-- What changes (docs/migrations.md):
--   * mi_schema_version records which migrations ran;
--   * keys (kind, business_key, serial_key) are checked the same way on every
--     database: no blank at either end, at most 40/64/64 characters;
--   * a payload with a key twice in one object is refused, and total_amount is
--     checked on the text the HIS wrote (1e3 and -0 are refused);
--   * mi_enqueue and mi_inbox_consume run with their owner's rights (SECURITY
--     DEFINER, pinned search_path), so EXECUTE is all the HIS needs; nobody
--     else may call them until grants.sql says so;
--   * mi_inbox_consume refuses a NULL or misspelt verdict and tells a missing
--     row from one already consumed;
--   * mi_v_pending shows age_seconds (a number, as on the other databases);
--   * indexes for the HIS's polls by business key, for order_id, and for a
--     request's serial key in any state.
-- Nothing here rewrites or deletes a row.

-- Every function below pins search_path to the schema the mi_ objects live in
-- (FROM CURRENT), with pg_temp last so that no temporary object can stand in
-- for one of ours.
SELECT pg_catalog.set_config('search_path',
                             pg_catalog.quote_ident(pg_catalog.current_schema()) || ', pg_temp', false);

CREATE TABLE mi_schema_version (
    version          INTEGER       PRIMARY KEY,
    name             VARCHAR(100)  NOT NULL,
    applied_at       TIMESTAMPTZ   NOT NULL DEFAULT now()
);

-- The first key that appears twice in one object of a JSON document, or NULL.
-- The json type keeps every member as written (jsonb would keep the last one).
CREATE FUNCTION mi_json_duplicate_key(doc json) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path FROM CURRENT AS $$
DECLARE
    dup   text;
    child json;
BEGIN
    IF json_typeof(doc) = 'object' THEN
        SELECT k INTO dup FROM json_object_keys(doc) AS t(k) GROUP BY k HAVING count(*) > 1 LIMIT 1;
        IF dup IS NOT NULL THEN
            RETURN dup;
        END IF;
        FOR child IN SELECT value FROM json_each(doc) WHERE json_typeof(value) IN ('object', 'array') LOOP
            dup := mi_json_duplicate_key(child);
            IF dup IS NOT NULL THEN
                RETURN dup;
            END IF;
        END LOOP;
    ELSIF json_typeof(doc) = 'array' THEN
        FOR child IN SELECT value FROM json_array_elements(doc) WHERE json_typeof(value) IN ('object', 'array') LOOP
            dup := mi_json_duplicate_key(child);
            IF dup IS NOT NULL THEN
                RETURN dup;
            END IF;
        END LOOP;
    END IF;
    RETURN NULL;
END $$;

-- Validation that holds however a row arrives (mi_enqueue or a plain INSERT
-- from an HIS trigger): bad input is refused to the HIS, nothing is inserted.
CREATE OR REPLACE FUNCTION mi_outbox_validate() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    doc    json;
    amount json;
    dup    text;
BEGIN
    IF NEW.kind IS NULL OR btrim(NEW.kind) = '' THEN
        RAISE EXCEPTION 'mibridge: kind is required' USING ERRCODE = '22023';
    END IF;
    IF NEW.business_key IS NULL OR btrim(NEW.business_key) = '' THEN
        RAISE EXCEPTION 'mibridge: business_key is required' USING ERRCODE = '22023';
    END IF;
    IF NEW.serial_key IS NULL OR btrim(NEW.serial_key) = '' THEN
        NEW.serial_key := NEW.business_key;
    END IF;
    -- Keys compare byte for byte. A blank at either end is refused rather than
    -- kept, because SQL Server's '=' ignores trailing blanks: the same keys
    -- must mean the same requests on every database.
    IF ascii(NEW.kind) IN (9, 10, 13, 32) OR ascii(right(NEW.kind, 1)) IN (9, 10, 13, 32) THEN
        RAISE EXCEPTION 'mibridge: kind must not start or end with a blank' USING ERRCODE = '22023';
    END IF;
    IF ascii(NEW.business_key) IN (9, 10, 13, 32) OR ascii(right(NEW.business_key, 1)) IN (9, 10, 13, 32) THEN
        RAISE EXCEPTION 'mibridge: business_key must not start or end with a blank' USING ERRCODE = '22023';
    END IF;
    IF ascii(NEW.serial_key) IN (9, 10, 13, 32) OR ascii(right(NEW.serial_key, 1)) IN (9, 10, 13, 32) THEN
        RAISE EXCEPTION 'mibridge: serial_key must not start or end with a blank' USING ERRCODE = '22023';
    END IF;
    -- Not JSON (NaN ...), or what no database could store: jsonb refuses a
    -- lone UTF-16 surrogate escape, which the json type lets through.
    BEGIN
        doc := NEW.payload::json;
        PERFORM doc::jsonb;
    EXCEPTION WHEN others THEN
        RAISE EXCEPTION 'mibridge: payload is not valid JSON' USING ERRCODE = '22023';
    END;
    IF json_typeof(doc) <> 'object' THEN
        RAISE EXCEPTION 'mibridge: payload must be a JSON object' USING ERRCODE = '22023';
    END IF;
    dup := mi_json_duplicate_key(doc);
    IF dup IS NOT NULL THEN
        RAISE EXCEPTION 'mibridge: payload has the key "%" twice in one object', dup USING ERRCODE = '22023';
    END IF;
    -- The amount as written: a string, or a number in plain digits ("1e3" and -0 are refused).
    amount := doc -> 'total_amount';
    IF amount IS NOT NULL AND json_typeof(amount) <> 'null' THEN
        IF json_typeof(amount) NOT IN ('string', 'number')
           OR (amount #>> '{}') !~ '^[0-9]+(\.[0-9]{1,2})?$' THEN
            RAISE EXCEPTION 'mibridge: total_amount must be a non-negative amount with at most 2 decimals, got %',
                amount::text USING ERRCODE = '22023';
        END IF;
    END IF;
    RETURN NEW;
END $$;

-- The one call the HIS makes per request. Returns the outbox id.
-- The same (kind, business_key) with the same payload returns the existing id
-- (a retried HIS transaction is harmless; the order of the payload's fields
-- does not matter); with a different payload it is an error.
-- SECURITY DEFINER: it runs with its owner's rights, so the HIS needs EXECUTE
-- on it and nothing on the tables.
CREATE OR REPLACE FUNCTION mi_enqueue(p_kind VARCHAR, p_business_key VARCHAR, p_serial_key VARCHAR, p_payload TEXT)
RETURNS BIGINT LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    new_id BIGINT;
    old_payload TEXT;
BEGIN
    -- Longer keys would be cut or refused by the columns; say so in words.
    IF char_length(p_kind) > 40 THEN
        RAISE EXCEPTION 'mibridge: kind is longer than 40 characters' USING ERRCODE = '22023';
    END IF;
    IF char_length(p_business_key) > 64 THEN
        RAISE EXCEPTION 'mibridge: business_key is longer than 64 characters' USING ERRCODE = '22023';
    END IF;
    IF char_length(p_serial_key) > 64 THEN
        RAISE EXCEPTION 'mibridge: serial_key is longer than 64 characters' USING ERRCODE = '22023';
    END IF;
    INSERT INTO mi_outbox (kind, business_key, serial_key, payload)
    VALUES (p_kind, p_business_key, COALESCE(p_serial_key, p_business_key), p_payload)
    ON CONFLICT (kind, business_key) DO NOTHING
    RETURNING id INTO new_id;
    IF new_id IS NOT NULL THEN
        RETURN new_id;
    END IF;
    SELECT id, payload INTO new_id, old_payload FROM mi_outbox
     WHERE kind = p_kind AND business_key = p_business_key;
    -- The BEFORE INSERT trigger checked p_payload even though the insert was
    -- skipped: a payload with a duplicate key never gets here.
    IF old_payload::jsonb IS DISTINCT FROM p_payload::jsonb THEN
        RAISE EXCEPTION 'mibridge: % request % already exists with a different payload (outbox id %)',
            p_kind, p_business_key, new_id USING ERRCODE = '23505';
    END IF;
    RETURN new_id;
END $$;

-- The HIS marks an inbox row as taken ('accepted') or refused ('rejected').
-- A refused settlement is repaired by the daemon (refund/reversal), see docs/.
CREATE OR REPLACE FUNCTION mi_inbox_consume(p_id BIGINT, p_ack VARCHAR DEFAULT 'accepted')
RETURNS VOID LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF p_ack IS NULL OR p_ack NOT IN ('accepted', 'rejected') THEN
        RAISE EXCEPTION 'mibridge: the verdict must be ''accepted'' or ''rejected'', not %',
            COALESCE(quote_literal(p_ack), 'NULL') USING ERRCODE = '22023';
    END IF;
    UPDATE mi_inbox SET consumed_at = now(), his_ack = p_ack
     WHERE id = p_id AND consumed_at IS NULL;
    IF NOT FOUND THEN
        IF EXISTS (SELECT 1 FROM mi_inbox WHERE id = p_id) THEN
            RAISE EXCEPTION 'mibridge: inbox row % was already consumed', p_id USING ERRCODE = '22023';
        END IF;
        RAISE EXCEPTION 'mibridge: inbox row % does not exist', COALESCE(p_id::text, 'NULL')
            USING ERRCODE = '22023';
    END IF;
END $$;

-- Functions are executable by PUBLIC by default; these two run with their
-- owner's rights, so only the roles grants.sql names may call them.
REVOKE ALL ON FUNCTION mi_enqueue(VARCHAR, VARCHAR, VARCHAR, TEXT) FROM PUBLIC;
REVOKE ALL ON FUNCTION mi_inbox_consume(BIGINT, VARCHAR) FROM PUBLIC;
ALTER FUNCTION mi_outbox_notify() SET search_path FROM CURRENT;

-- age_seconds, a number, as on the other databases (was "age", an interval).
-- A view cannot change a column's type in place: it is dropped and created
-- again, and the privileges granted on it are given back.
DO $$
DECLARE
    g record;
    granted text[] := '{}';
BEGIN
    FOR g IN SELECT a.privilege_type,
                    CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END AS grantee
               FROM pg_class c
               CROSS JOIN LATERAL aclexplode(c.relacl) a
               LEFT JOIN pg_roles r ON r.oid = a.grantee
              WHERE c.oid = 'mi_v_pending'::regclass AND a.grantee <> c.relowner LOOP
        granted := granted || format('GRANT %s ON mi_v_pending TO %s', g.privilege_type, g.grantee);
    END LOOP;
    DROP VIEW mi_v_pending;
    CREATE VIEW mi_v_pending AS
    SELECT id, kind, business_key, serial_key, state, step, attempts, next_attempt_at, created_at,
           floor(EXTRACT(EPOCH FROM now() - created_at))::bigint AS age_seconds,
           last_error_code, last_error_message
      FROM mi_outbox WHERE state IN ('pending', 'in_doubt');
    FOR i IN 1 .. coalesce(array_length(granted, 1), 0) LOOP
        EXECUTE granted[i];
    END LOOP;
END $$;

-- The HIS polls its results by business key; refunds sum their payment's rows by order_id.
CREATE INDEX mi_inbox_business_ix ON mi_inbox (business_key, kind);
CREATE INDEX mi_inbox_order_ix ON mi_inbox (order_id) WHERE order_id IS NOT NULL;
-- Requests of one kind and serial key in any state (a refund counts its payment's
-- other refunds): the open-row index cannot serve a query that names final states.
CREATE INDEX mi_outbox_serial_kind_ix ON mi_outbox (serial_key, kind);

INSERT INTO mi_schema_version (version, name) VALUES (1, '001_baseline'), (2, '002_hardening');
