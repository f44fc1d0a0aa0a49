import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_application = get_wsgi_application()

from config.security import refuse_insecure_settings  # noqa: E402 - needs settings

refuse_insecure_settings()

from core.credential_guard import CredentialGuard  # noqa: E402 - needs Django set up
from scheduler.api.agent_doors import AgentFastPath  # noqa: E402 - needs Django set up

# Agents' heartbeats and lease reads skip Django's request cycle; the rest is Django's.
# Outermost, the failed-credentials guard: it sees every door's requests.
application = CredentialGuard(AgentFastPath(django_application))

# What is loaded by now stays for the process's life: out of the collector's sight, a full
# collection no longer walks it (and no longer stalls a request: docs/performance.md).
gc.freeze()
