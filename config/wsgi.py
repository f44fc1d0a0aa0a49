import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_application = get_wsgi_application()

from config.security import refuse_insecure_settings  # noqa: E402 - needs settings

refuse_insecure_settings()

from core.credential_guard import CredentialGuard  # noqa: E402 - needs Django set up

# The site and its API, Django's request cycle for every request: the agents' fast path
# (scheduler.agent_api.doors) wraps only their own server, config.asgi. Outermost, the
# failed-credentials guard: the request's address for the credential lookups below.
application = CredentialGuard(django_application)

# What is loaded by now stays for the process's life: out of the collector's sight, a full
# collection no longer walks it (and no longer stalls a request: docs/performance.md).
gc.freeze()
