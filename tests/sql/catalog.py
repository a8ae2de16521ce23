"""What a database's catalog says about the mi_ objects: columns (type, length,
nullability, default, collation), indexes, constraints, views, routines and
triggers, with their bodies; in a form two databases can be compared in
(the database's own name and generated names taken out)."""
from __future__ import annotations

import re

from bridge.db.store import Store


def _norm(text) -> str:
    if text is None:
        return ""
    text = str(text)
    text = re.sub(r"--[^\n]*", "", text)
    return " ".join(text.split())


def catalog(store: Store) -> dict:
    name = store.dialect.name
    fn = {"sqlite": _sqlite, "postgresql": _postgresql, "mysql": _mysql,
          "oracle": _oracle, "sqlserver": _sqlserver}[name]
    return fn(store)


def _rows(store: Store, sql: str, params: dict | None = None) -> list[tuple]:
    return [tuple(_norm(v) if isinstance(v, str) else v for v in r) for r in store.query(sql, params)]


def _sqlite(s: Store) -> dict:
    objects = _rows(s, "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name LIKE 'mi%' ORDER BY type, name")
    columns = {}
    for (t,) in s.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'mi%' ORDER BY name"):
        columns[t] = [tuple(r) for r in s.query(f"SELECT * FROM pragma_table_xinfo('{t}')")]
    return {"objects": objects, "columns": columns}


def _postgresql(s: Store) -> dict:
    q = lambda sql: _rows(s, sql)  # noqa: E731
    return {
        "columns": q("""SELECT table_name, column_name, ordinal_position, data_type, character_maximum_length,
                               numeric_precision, numeric_scale, is_nullable, column_default, is_identity,
                               identity_generation, collation_name
                          FROM information_schema.columns WHERE table_schema = current_schema()
                           AND table_name LIKE 'mi%' ORDER BY table_name, ordinal_position"""),
        "relations": q("""SELECT c.relname, c.relkind, COALESCE(c.relacl::text, '') FROM pg_class c
                           WHERE c.relnamespace = current_schema()::regnamespace AND c.relname LIKE 'mi%'
                           ORDER BY c.relname"""),
        "constraints": q("""SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid) FROM pg_constraint
                             WHERE connamespace = current_schema()::regnamespace ORDER BY 1, 2"""),
        "indexes": q("""SELECT tablename, indexname, indexdef FROM pg_indexes
                         WHERE schemaname = current_schema() ORDER BY 1, 2"""),
        "views": q("SELECT viewname, definition FROM pg_views WHERE schemaname = current_schema() ORDER BY 1"),
        "functions": q("""SELECT proname, pg_get_function_identity_arguments(oid), pg_get_function_result(oid),
                                 prosrc, prosecdef, provolatile, COALESCE(array_to_string(proconfig, ','), ''),
                                 COALESCE(proacl::text, '')
                            FROM pg_proc WHERE pronamespace = current_schema()::regnamespace ORDER BY 1, 2"""),
        "triggers": q("""SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal
                          AND tgrelid::regclass::text LIKE 'mi%' ORDER BY 1"""),
    }


def _mysql(s: Store) -> dict:
    db = s.query("SELECT DATABASE()")[0][0]
    strip = lambda rows: [tuple(str(v).replace(f"`{db}`.", "") if isinstance(v, str) else v for v in r)  # noqa: E731
                          for r in rows]
    q = lambda sql: strip(_rows(s, sql))  # noqa: E731
    return {
        "tables": q("""SELECT TABLE_NAME, TABLE_TYPE, ENGINE, TABLE_COLLATION FROM information_schema.TABLES
                        WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1"""),
        "columns": q("""SELECT TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_DEFAULT, IS_NULLABLE, COLUMN_TYPE,
                               CHARACTER_SET_NAME, COLLATION_NAME, EXTRA, GENERATION_EXPRESSION
                          FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1, 3"""),
        "indexes": q("""SELECT TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE
                          FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1, 2, 3"""),
        "constraints": q("""SELECT TABLE_NAME, CONSTRAINT_NAME, CONSTRAINT_TYPE FROM information_schema.TABLE_CONSTRAINTS
                             WHERE CONSTRAINT_SCHEMA = DATABASE() ORDER BY 1, 2"""),
        "checks": q("""SELECT TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
                        WHERE CONSTRAINT_SCHEMA = DATABASE() ORDER BY 1, 2"""),
        "foreign_keys": q("""SELECT TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME, DELETE_RULE
                               FROM information_schema.REFERENTIAL_CONSTRAINTS
                              WHERE CONSTRAINT_SCHEMA = DATABASE() ORDER BY 1, 2"""),
        "views": q("""SELECT TABLE_NAME, VIEW_DEFINITION, SECURITY_TYPE FROM information_schema.VIEWS
                       WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1"""),
        "routines": q("""SELECT ROUTINE_NAME, ROUTINE_TYPE, ROUTINE_DEFINITION, SQL_MODE, SECURITY_TYPE, IS_DETERMINISTIC
                           FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY 1"""),
        "parameters": q("""SELECT SPECIFIC_NAME, ORDINAL_POSITION, PARAMETER_MODE, PARAMETER_NAME, DTD_IDENTIFIER,
                                  CHARACTER_SET_NAME, COLLATION_NAME
                             FROM information_schema.PARAMETERS WHERE SPECIFIC_SCHEMA = DATABASE() ORDER BY 1, 2"""),
        "triggers": q("""SELECT TRIGGER_NAME, EVENT_MANIPULATION, EVENT_OBJECT_TABLE, ACTION_TIMING, ACTION_STATEMENT,
                                SQL_MODE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY 1"""),
    }


def _oracle(s: Store) -> dict:
    q = lambda sql: _rows(s, sql)  # noqa: E731
    return {
        "columns": q("""SELECT table_name, column_name, column_id, data_type, char_length, char_used, data_precision,
                               data_scale, nullable, data_default, identity_column
                          FROM user_tab_columns WHERE table_name LIKE 'MI%' ORDER BY table_name, column_id"""),
        "identity": q("""SELECT c.table_name, c.column_name, c.generation_type, q.order_flag, q.cache_size
                           FROM user_tab_identity_cols c JOIN user_sequences q ON q.sequence_name = c.sequence_name
                          ORDER BY 1, 2"""),
        "indexes": q("""SELECT i.table_name, i.index_name, i.uniqueness, c.column_position, c.column_name, e.column_expression
                          FROM user_indexes i JOIN user_ind_columns c ON c.index_name = i.index_name
                          LEFT JOIN user_ind_expressions e ON e.index_name = c.index_name
                                                          AND e.column_position = c.column_position
                         WHERE i.table_name LIKE 'MI%' AND i.index_name NOT LIKE 'SYS%' ORDER BY 2, 4"""),
        "constraints": q("""SELECT table_name, constraint_name, constraint_type, search_condition, r_constraint_name
                              FROM user_constraints WHERE table_name LIKE 'MI%' AND generated = 'USER NAME'
                             ORDER BY 1, 2"""),
        "views": q("SELECT view_name, text FROM user_views WHERE view_name LIKE 'MI%' ORDER BY 1"),
        "source": q("""SELECT name, type, LISTAGG(text, '') WITHIN GROUP (ORDER BY line) FROM user_source
                        WHERE name LIKE 'MI%' GROUP BY name, type ORDER BY 1, 2"""),
        "objects": q("""SELECT object_name, object_type, status FROM user_objects
                         WHERE object_name LIKE 'MI%' AND object_name NOT LIKE 'SYS%' ORDER BY 1, 2"""),
    }


def _sqlserver(s: Store) -> dict:
    q = lambda sql: _rows(s, sql)  # noqa: E731
    # A module changed by CREATE OR ALTER keeps that text: compare the definition.
    modules = [(n, t, re.sub(r"^(CREATE OR ALTER|ALTER)\b", "CREATE", d, flags=re.I), a, qi)
               for n, t, d, a, qi in q("""SELECT o.name, o.type, m.definition, m.uses_ansi_nulls, m.uses_quoted_identifier
                                            FROM sys.sql_modules m JOIN sys.objects o ON o.object_id = m.object_id
                                           WHERE o.name LIKE 'mi%' ORDER BY 1""")]
    return {
        "modules": modules,
        "columns": q("""SELECT t.name, c.name, c.column_id, ty.name, c.max_length, c.precision, c.scale, c.is_nullable,
                               c.collation_name, c.is_identity, c.is_computed, COALESCE(d.definition, '')
                          FROM sys.tables t JOIN sys.columns c ON c.object_id = t.object_id
                          JOIN sys.types ty ON ty.user_type_id = c.user_type_id
                          LEFT JOIN sys.default_constraints d ON d.object_id = c.default_object_id
                         WHERE t.name LIKE 'mi%' ORDER BY t.name, c.column_id"""),
        "indexes": q("""SELECT t.name, i.name, i.type_desc, i.is_unique, i.is_primary_key, i.is_unique_constraint,
                               COALESCE(i.filter_definition, ''), ic.key_ordinal, ic.is_included_column, c.name
                          FROM sys.indexes i JOIN sys.tables t ON t.object_id = i.object_id
                          JOIN sys.index_columns ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id
                          JOIN sys.columns c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
                         WHERE t.name LIKE 'mi%' ORDER BY t.name, i.name, ic.key_ordinal, c.name"""),
        "checks": q("""SELECT OBJECT_NAME(parent_object_id), name, definition FROM sys.check_constraints
                        WHERE OBJECT_NAME(parent_object_id) LIKE 'mi%' ORDER BY 1, 2"""),
        "foreign_keys": q("""SELECT OBJECT_NAME(parent_object_id), name, OBJECT_NAME(referenced_object_id)
                               FROM sys.foreign_keys WHERE OBJECT_NAME(parent_object_id) LIKE 'mi%' ORDER BY 1, 2"""),
    }
