"""The delivery wing: the worker side of sending (claims, sends, records, receipts, sweeps)."""
