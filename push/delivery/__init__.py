"""The delivery wing: the worker side of Keymaster.

Tasks (push/tasks.py) call in here; only this package calls the transports. It claims and
sends a chunk of deliveries (deliveries.py), records the outcomes and rolls the notifications
up, writes and POSTs the receipts (receipts.py) through a claimable outbox (outbox.py), waits
between attempts (backoff.py), sweeps due retries and dead workers' claims, and holds the
per-process runtime: event loop, HTTP sessions, credentials (runtime.py). queue.py is the
hand-off from the request side: it enqueues the chunks the workers take.
"""
