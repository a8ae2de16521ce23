-- mibridge migration 002 (hardening) for SQLite: from schema version 1 (the
-- release installed by 001_baseline.sql) to version 2.
-- Normally run by `mibridge db upgrade --url sqlite:///...`. By hand:
--   sqlite3 his.db < sql/sqlite/migrations/002_hardening.sql
-- It runs as one transaction: on any error nothing of it is kept (.bail on
-- stops the sqlite3 shell at the error).
-- What changes (docs/migrations.md):
--   * mi_schema_version records which migrations ran;
--   * keys (kind, business_key, serial_key) are checked the same way on every
--     database: no blank at either end, at most 40/64/64 characters;
--   * a payload with a key twice in one object or a lone UTF-16 surrogate
--     escape is refused; total_amount is checked on the text the HIS wrote
--     (1e3 was taken as 1000.00, 12.999999999999999 as 13.00);
--   * the same request again with its payload's fields in another order is
--     the same request (it was refused as a different payload);
--   * the HIS consumes an inbox row with INSERT INTO mi_inbox_consume, which
--     refuses a row that does not exist (a plain UPDATE did nothing, silently)
--     and a NULL or misspelt verdict;
--   * indexes for the HIS's polls by business key, for order_id, and for a
--     request's serial key in any state.
-- Nothing here rewrites or deletes a row.
.bail on
BEGIN IMMEDIATE;

CREATE TABLE mi_schema_version (
    version          INTEGER PRIMARY KEY,
    name             TEXT    NOT NULL,
    applied_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now'))
);

-- One trigger for every check, so that they run in this order (SQLite does
-- not promise an order between triggers).
DROP TRIGGER mi_outbox_duplicate_tg;
DROP TRIGGER mi_outbox_validate_tg;
-- Validation that holds however a row arrives: bad input aborts the INSERT
-- with a 'mibridge: ...' message and nothing is inserted; the same request
-- again (same kind and business key) with the same payload, whatever the
-- order of its fields, is silently ignored, with a different payload it aborts.
CREATE TRIGGER mi_outbox_validate_tg BEFORE INSERT ON mi_outbox
BEGIN
    SELECT CASE
        WHEN NEW.kind IS NULL OR trim(NEW.kind) = ''
            THEN RAISE(ABORT, 'mibridge: kind is required')
        WHEN NEW.business_key IS NULL OR trim(NEW.business_key) = ''
            THEN RAISE(ABORT, 'mibridge: business_key is required')
        WHEN NEW.serial_key IS NULL
            THEN RAISE(ABORT, 'mibridge: serial_key is NULL: leave the column out, or give '''', to use the business key')
        -- Keys compare byte for byte. A blank at either end is refused rather
        -- than kept, as on every database (SQL Server's '=' ignores trailing blanks).
        WHEN unicode(NEW.kind) IN (9, 10, 13, 32) OR unicode(substr(NEW.kind, -1)) IN (9, 10, 13, 32)
            THEN RAISE(ABORT, 'mibridge: kind must not start or end with a blank')
        WHEN unicode(NEW.business_key) IN (9, 10, 13, 32) OR unicode(substr(NEW.business_key, -1)) IN (9, 10, 13, 32)
            THEN RAISE(ABORT, 'mibridge: business_key must not start or end with a blank')
        WHEN trim(NEW.serial_key) <> ''
             AND (unicode(NEW.serial_key) IN (9, 10, 13, 32) OR unicode(substr(NEW.serial_key, -1)) IN (9, 10, 13, 32))
            THEN RAISE(ABORT, 'mibridge: serial_key must not start or end with a blank')
        WHEN length(NEW.kind) > 40
            THEN RAISE(ABORT, 'mibridge: kind is longer than 40 characters')
        WHEN length(NEW.business_key) > 64
            THEN RAISE(ABORT, 'mibridge: business_key is longer than 64 characters')
        WHEN length(NEW.serial_key) > 64
            THEN RAISE(ABORT, 'mibridge: serial_key is longer than 64 characters')
        WHEN NEW.payload IS NULL OR NOT json_valid(NEW.payload)
            THEN RAISE(ABORT, 'mibridge: payload is not valid JSON')
        WHEN json_type(NEW.payload) <> 'object'
            THEN RAISE(ABORT, 'mibridge: payload must be a JSON object')
        -- A lone UTF-16 surrogate escape (\ud800 without its \udc00): json_valid
        -- takes it, no other database does, and the daemon could never write it
        -- back. Searched in the text with its escaped backslashes blanked out, where each
        -- remaining \u starts an escape: a high half (\ud800-\udbff) not followed
        -- by a low one (\udc00-\udfff), or a low half not preceded by a high one.
        WHEN EXISTS (SELECT 1 FROM (SELECT lower(replace(NEW.payload, '\\', '__')) AS s)
                      WHERE instr(s, '\ud') > 0
                        AND (s GLOB '*\ud[89ab]??' OR s GLOB '*\ud[89ab]??[^\]*' OR s GLOB '*\ud[89ab]??\[^u]*'
                             OR s GLOB '*\ud[89ab]??\u[^d]*' OR s GLOB '*\ud[89ab]??\ud[^c-f]*'
                             OR s GLOB '\ud[c-f]*' OR s GLOB '?\ud[c-f]*' OR s GLOB '??\ud[c-f]*'
                             OR s GLOB '???\ud[c-f]*' OR s GLOB '????\ud[c-f]*' OR s GLOB '?????\ud[c-f]*'
                             OR s GLOB '*[^0-9a-f]\ud[c-f]*' OR s GLOB '*[^0-9a-f]?\ud[c-f]*'
                             OR s GLOB '*[^89ab]??\ud[c-f]*' OR s GLOB '*[^d]???\ud[c-f]*'
                             OR s GLOB '*[^u]????\ud[c-f]*' OR s GLOB '*[^\]?????\ud[c-f]*'))
            THEN RAISE(ABORT, 'mibridge: payload is not valid JSON')
        -- A key twice in one object (SQLite would read the first, the daemon the last).
        WHEN EXISTS (SELECT 1 FROM json_tree(NEW.payload) WHERE parent IS NOT NULL
                      GROUP BY parent, key HAVING COUNT(*) > 1)
            THEN RAISE(ABORT, 'mibridge: payload has a key twice in one object')
        -- The amount as written: a string, or a number in plain digits (->
        -- gives a number's own text, so 1e3 and -0 are refused).
        WHEN json_type(NEW.payload, '$.total_amount') IS NOT NULL
             AND json_type(NEW.payload, '$.total_amount') <> 'null'
             AND (SELECT t = '' OR t GLOB '*[^0-9.]*' OR t GLOB '.*' OR t GLOB '*.' OR t GLOB '*.*.*' OR t GLOB '*.???*'
                    FROM (SELECT CASE json_type(NEW.payload, '$.total_amount')
                                     WHEN 'text' THEN NEW.payload ->> '$.total_amount'
                                     ELSE NEW.payload -> '$.total_amount' END AS t))
            THEN RAISE(ABORT, 'mibridge: total_amount must be a non-negative amount with at most 2 decimals')
        -- The same request again: the same document is a no-op (leaf by leaf, so
        -- the order of the fields does not matter), another one an error.
        WHEN EXISTS (SELECT 1 FROM mi_outbox WHERE kind = NEW.kind AND business_key = NEW.business_key)
            THEN CASE
                WHEN NOT EXISTS (SELECT fullkey, CASE WHEN type IN ('integer', 'real') THEN 'number' ELSE type END, atom
                                   FROM json_tree((SELECT payload FROM mi_outbox
                                                    WHERE kind = NEW.kind AND business_key = NEW.business_key))
                                 EXCEPT
                                 SELECT fullkey, CASE WHEN type IN ('integer', 'real') THEN 'number' ELSE type END, atom
                                   FROM json_tree(NEW.payload))
                 AND NOT EXISTS (SELECT fullkey, CASE WHEN type IN ('integer', 'real') THEN 'number' ELSE type END, atom
                                   FROM json_tree(NEW.payload)
                                 EXCEPT
                                 SELECT fullkey, CASE WHEN type IN ('integer', 'real') THEN 'number' ELSE type END, atom
                                   FROM json_tree((SELECT payload FROM mi_outbox
                                                    WHERE kind = NEW.kind AND business_key = NEW.business_key)))
                THEN RAISE(IGNORE)
                ELSE RAISE(ABORT, 'mibridge: this request (kind, business_key) already exists with a different payload')
            END
    END;
END;

-- SQLite has no procedures: the HIS consumes an inbox row with one INSERT into
-- this view, whose trigger does what mi_inbox_consume does elsewhere:
--   INSERT INTO mi_inbox_consume (id, his_ack) VALUES (42, 'accepted');
-- A row that does not exist or was already consumed, and a verdict other than
-- 'accepted' or 'rejected' (NULL included), abort with a 'mibridge: ...' message.
CREATE VIEW mi_inbox_consume (id, his_ack) AS SELECT id, his_ack FROM mi_inbox WHERE 0;

CREATE TRIGGER mi_inbox_consume_tg INSTEAD OF INSERT ON mi_inbox_consume
BEGIN
    SELECT CASE
        WHEN NEW.his_ack IS NULL OR NEW.his_ack NOT IN ('accepted', 'rejected')
            THEN RAISE(ABORT, 'mibridge: the verdict must be ''accepted'' or ''rejected''')
        WHEN NOT EXISTS (SELECT 1 FROM mi_inbox WHERE id = NEW.id)
            THEN RAISE(ABORT, 'mibridge: inbox row does not exist')
        WHEN EXISTS (SELECT 1 FROM mi_inbox WHERE id = NEW.id AND consumed_at IS NOT NULL)
            THEN RAISE(ABORT, 'mibridge: inbox row was already consumed')
    END;
    UPDATE mi_inbox SET consumed_at = strftime('%Y-%m-%d %H:%M:%f','now'), his_ack = NEW.his_ack
     WHERE id = NEW.id AND consumed_at IS NULL;
END;

-- An HIS that still marks rows with a plain UPDATE gets the same verdict check:
-- a misspelt verdict is refused in words, and a row is never consumed without one.
CREATE TRIGGER mi_inbox_ack_tg BEFORE UPDATE OF consumed_at, his_ack ON mi_inbox
WHEN NEW.consumed_at IS NOT NULL AND (NEW.his_ack IS NULL OR NEW.his_ack NOT IN ('accepted', 'rejected'))
BEGIN
    SELECT RAISE(ABORT, 'mibridge: the verdict must be ''accepted'' or ''rejected''');
END;

-- The HIS polls its results by business key; refunds sum their payment's rows by order_id.
CREATE INDEX mi_inbox_business_ix ON mi_inbox (business_key, kind);
CREATE INDEX mi_inbox_order_ix ON mi_inbox (order_id) WHERE order_id IS NOT NULL;
-- Requests of one kind and serial key in any state (a refund counts its payment's
-- other refunds): the open-row index cannot serve a query that names final states.
CREATE INDEX mi_outbox_serial_kind_ix ON mi_outbox (serial_key, kind);

INSERT INTO mi_schema_version (version, name) VALUES (1, '001_baseline'), (2, '002_hardening');
COMMIT;
