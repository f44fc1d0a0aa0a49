"""The agents' server: gunicorn with uvicorn workers serves this (docker/compose.yaml's
`agents` service; the site and its API are config.wsgi's, gunicorn's sync workers).

Heartbeats, most of the agents' traffic, are answered in the event loop while each waits
on Redis, many at once per worker. Every other request goes to Django's WSGI application
in a thread (a2wsgi), so Django runs as it does under WSGI: its ASGI handler hands every
synchronous middleware to a thread of its own, which here costs several times a request."""

import gc
import os

from a2wsgi import WSGIMiddleware

from config.wsgi import django_application  # first: it sets Django up
from core.credential_guard import CredentialGuardASGI
from scheduler.agent_api.doors import AgentFastPathASGI
from scheduler.api.log_doors import LogDoorsASGI

# Log chunks and buyers following a log (?follow=1) too (scheduler.api.log_doors); the
# failed-credentials guard around all of them.
application = CredentialGuardASGI(LogDoorsASGI(AgentFastPathASGI(
    WSGIMiddleware(django_application,  # type: ignore[arg-type]
                   workers=int(os.environ.get("AGENTS_DJANGO_THREADS", "4")))
)))

# As in config.wsgi, for what this module loaded: a full collection that walked all of it
# stalled a worker's event loop, and every agent waiting on it; it was the heartbeat's
# p99 in bench.agent_api (docs/performance.md).
gc.freeze()
