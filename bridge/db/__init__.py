"""The database side of the engine: the Store (store.py), its dialects, the row types (rows.py)."""
