import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_application = get_wsgi_application()

from scheduler.api.heartbeat import HeartbeatFastPath  # noqa: E402 - needs Django set up

# Agents' heartbeats skip Django's request cycle; everything else is Django's.
application = HeartbeatFastPath(django_application)

# What is loaded by now stays for the process's life: out of the collector's sight, a full
# collection no longer walks it (and no longer stalls a request for tens of ms).
gc.freeze()
