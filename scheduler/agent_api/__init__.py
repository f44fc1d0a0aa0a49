"""The agents' fast path, one package: what nodes' agents call most (heartbeats, lease
reads and waits, log chunks), answered by plain functions that the DRF views and the
middleware around the agents' ASGI server (doors.py, config.asgi only) share.

- bodies.py: the one validation of what agents send (bounds from serializers.py);
- heartbeat.py, lease.py, lease_push.py, log_chunk.py: one answer per call;
- rate_limit.py: the node's rate, for every agent call;
- paths.py: the URLs, read from the URLconf;
- answers.py, database_threads.py: the shape of an answer, database work off the loop.

The writes stay services (scheduler.services.nodes, heartbeat_buffer): the views and
periodic tasks call them too. Nothing here imports scheduler.api (.importlinter)."""
