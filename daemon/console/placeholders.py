"""The places kept in the console for two pages whose database views another
change brings:

    Orders           reads mi_v_orders: the order book, searchable by date, business
                     key, patient (masked), status and channel; each order's
                     insurance, personal-account and cash amounts, its refunds per
                     leg and its masked call journal; CSV export.
    Reconciliation   reads mi_v_reconciliation: the day's results and differences
                     by class.

Each is wired into the navigation (console PAGES) under the endpoint names
"orders" and "reconciliation"; the page that replaces a placeholder registers a
view under the same endpoint name (and removes it from here), so links and the
navigation stay as they are.
"""
from __future__ import annotations

from flask import Flask, render_template


def register(app: Flask) -> None:
    @app.get("/orders")
    def orders():
        return render_template("placeholder.html", title="orders", what="orders_coming", view="mi_v_orders")

    @app.get("/reconciliation")
    def reconciliation():
        return render_template("placeholder.html", title="reconciliation", what="recon_coming",
                               view="mi_v_reconciliation")
