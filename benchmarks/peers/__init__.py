"""Peer servers for ``benchmarks/compare.py``: each broadcasts every message it receives from
any client to every connected client (the sender included), with no storage and no auth."""
