"""gunicorn settings for production (the Procfile's `web`).

gunicorn's asyncio worker holds every connection in an event loop: a client sending its request
a byte at a time (slowloris) costs a socket, never a worker, and Django's views run once the
whole request is in. Our subclass adds a deadline for the headers (keymaster/gunicorn_worker.py).

Django's ASGI handler runs each request's sync code in a thread of its own, so requests in flight
on one worker run side by side, and a persistent connection (CONN_MAX_AGE > 0) would be opened
per request and kept until collected (Django ticket #33497): hundreds at once. Each web process
therefore uses Django's psycopg pool instead, WEB_DB_POOL_SIZE connections (4 by default): a
request takes one when it first queries and gives it back when it ends; a request that finds
none free waits for one (up to 10 s). Set here, before any worker loads Django, so the qcluster
workers and `manage.py` commands keep their persistent connections.
"""

from __future__ import annotations

import os

os.environ["DB_POOL_MAX_SIZE"] = os.environ.get("WEB_DB_POOL_SIZE", "4")  # keymaster/settings.py

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
worker_class = "keymaster.gunicorn_worker.HeaderDeadlineWorker"
# Connections one worker holds open, slow or idle ones included; past it, new ones wait in the
# backlog. Slow clients beyond workers × this need a buffering proxy in front.
worker_connections = int(os.environ.get("WEB_MAX_CONNECTIONS", "1000"))
# Seconds: a worker silent this long is replaced, and a body that stops arriving for this long
# ends its request; an idle keep-alive connection is closed after `keepalive`; a connection
# whose headers are not in after WEB_HEADER_TIMEOUT (10) is closed.
timeout = 30
graceful_timeout = 30
keepalive = 5
# Headers past these are refused with 400 before Django sees them.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
asgi_lifespan = "off"  # Django has no lifespan events
accesslog = "-"
