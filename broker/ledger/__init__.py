"""The record: 区司法局's append-only, hash-chained ledger of every signed event (store.py) and its audit (audit.py).

It lives in broker, not projections, because it is what the views are rebuilt from, not a view itself.
"""
