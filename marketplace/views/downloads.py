"""Files the server offers to anyone: the node agent's wheel, for a provider's GPU machine
(which has no session, only the URL the portal showed)."""

from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect
from django.views.decorators.http import require_safe

from marketplace.agent_wheel import (
    AGENT_VERSION,
    AgentWheelUnavailable,
    agent_wheel_name,
    agent_wheel_path,
)


@require_safe
def agent_wheel(request: HttpRequest, version: str) -> HttpResponseBase:
    # Only the agent this server runs: an older or newer version is not here to offer.
    if version != AGENT_VERSION:
        raise Http404("This server offers the agent version " + AGENT_VERSION + " only.")
    try:
        path = agent_wheel_path()
    except AgentWheelUnavailable:
        return HttpResponse("The agent's wheel cannot be built right now; try again shortly.",
                            status=503, content_type="text/plain; charset=utf-8")
    return FileResponse(path.open("rb"), as_attachment=True, filename=agent_wheel_name(),
                        content_type="application/octet-stream")


@require_safe
def agent_wheel_short(request: HttpRequest, version: str) -> HttpResponseBase:
    """`suanli-agent-<version>.whl`, the name people type: pip refuses a wheel whose file
    name lacks its tags, so this sends them to the full name."""
    if version != AGENT_VERSION:
        raise Http404("This server offers the agent version " + AGENT_VERSION + " only.")
    return redirect("store:agent-wheel", version=version)
