"""What a job gave back, on its page: the log (live while it runs, downloadable whole)
and its outputs. The pane reads the same JSON API the CLI reads (session-authenticated);
these views serve what a browser needs besides: the whole log as a file and a fresh
signed URL per output."""

from collections.abc import Iterator

from django.http import HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.shortcuts import redirect

from marketplace.views.base import OrganizationRequest, buyer_required, found_or_404
from scheduler.selectors import job_get
from scheduler.services.logs import log_read
from scheduler.services.outputs import output_download_url, output_list

READ_BYTES = 1024 * 1024


def _whole_log(job_id: int) -> Iterator[bytes]:
    offset = 0
    while True:
        piece = log_read(job_id=job_id, attempt=None, offset=offset, limit=READ_BYTES)
        if not piece.data:
            return
        yield piece.data
        offset = piece.next_offset


@buyer_required
def job_log_download(request: OrganizationRequest, job_id: int) -> HttpResponseBase:
    found_or_404(lambda: job_get(organization_id=request.organization.pk, job_id=job_id))
    response = StreamingHttpResponse(_whole_log(job_id), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="job-{job_id}.log"'
    return response


@buyer_required
def job_output_download(request: OrganizationRequest, job_id: int,
                        output_id: int) -> HttpResponse:
    found_or_404(lambda: job_get(organization_id=request.organization.pk, job_id=job_id))
    output = next((o for o in output_list(job_id=job_id) if o.pk == output_id), None)
    url = output and output_download_url(output, base_url=request.build_absolute_uri("/"))
    if not url:
        return HttpResponse("No such output, or not uploaded.", status=404,
                            content_type="text/plain")
    return redirect(url)  # type: ignore[return-value]
