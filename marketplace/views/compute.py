"""Catalog and jobs: what a buyer does to run compute."""


from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from core.errors import DomainError
from marketplace.forms import JobSubmitForm, apply_domain_error
from marketplace.selectors import price_history_list
from marketplace.views.base import (
    OrganizationRequest,
    found_or_404,
    organization_required,
)
from scheduler.pricing import charge_for
from scheduler.selectors import (
    gpu_class_availability,
    gpu_class_list,
    job_assignments,
    job_get,
    job_list,
)
from scheduler.services.jobs import job_cancel, job_submit
from scheduler.services.outputs import output_list


def catalog(request: HttpRequest) -> HttpResponse:
    availability = gpu_class_availability()
    classes = []
    for c in gpu_class_list():
        history = list(price_history_list(gpu_class_id=c.pk)[:48])[::-1]
        classes.append({
            "cls": c, "regions": availability.get(c.pk, []), "history": history,
            "script_id": f"history-{c.pk}",
            "chart": [{"label": h.created_at.strftime("%m-%d %H:%M"), "value": h.on_demand_rate}
                      for h in history],
        })
    return render(request, "marketplace/compute/catalog.html",
                  {"nav": "catalog", "classes": classes})


def _class_choices() -> list[tuple[str, str]]:
    return [(c.name, f"{c.name} — {c.on_demand_rate:,} tokens/GPU-hour")
            for c in gpu_class_list()]


@organization_required
def jobs(request: OrganizationRequest) -> HttpResponse:
    form = JobSubmitForm(request.POST or None, gpu_classes=_class_choices())
    if request.method == "POST" and form.is_valid():
        try:
            job = job_submit(
                organization_id=request.organization.pk, spec=form.spec(),
                gpu_class=form.cleaned_data["gpu_class"],
                gpu_count=form.cleaned_data["gpu_count"],
                max_duration_s=form.cleaned_data["max_duration_s"],
                priority=form.cleaned_data.get("priority") or 0,
                idempotency_key=form.posting_key,
            )
        except DomainError as exc:
            apply_domain_error(form, exc)
        else:
            messages.success(request, f"Job {job.pk} queued; {job.hold_amount:,} tokens held "
                                      "until it ends (only what it uses is charged).")
            return redirect("store:job_detail", job_id=job.pk)
    return render(request, "marketplace/compute/jobs.html", {
        "nav": "jobs", "form": form, "jobs": job_list(organization_id=request.organization.pk)[:50],
    })


@organization_required
def job_rows(request: OrganizationRequest) -> HttpResponse:
    """The job table's body, polled by htmx for live status."""
    return render(request, "marketplace/compute/_job_rows.html",
                  {"jobs": job_list(organization_id=request.organization.pk)[:50]})


@organization_required
def job_detail(request: OrganizationRequest, job_id: int) -> HttpResponse:
    job = found_or_404(lambda: job_get(organization_id=request.organization.pk, job_id=job_id))
    template = ("marketplace/compute/_job_live.html" if request.headers.get("HX-Request")
                else "marketplace/compute/job_detail.html")
    return render(request, template, {
        "nav": "jobs", "job": job, "assignments": job_assignments(job_id=job.pk),
        "max_cost": job.hold_amount,
        "active": job.state in ("queued", "placed", "running"),
        "outputs": output_list(job_id=job.pk),
    })


@organization_required
@require_POST
def job_cancel_view(request: OrganizationRequest, job_id: int) -> HttpResponse:
    found_or_404(lambda: job_get(organization_id=request.organization.pk, job_id=job_id))
    try:
        job = job_cancel(organization_id=request.organization.pk, job_id=job_id)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Job {job.pk} canceled; the unused hold went back to "
                                  "your wallet.")
    return redirect("store:job_detail", job_id=job_id)


def estimate(gpu_count: int, seconds: int, rate: int) -> int:
    return charge_for(gpu_count * seconds, rate)


@organization_required
def job_estimate(request: OrganizationRequest) -> HttpResponse:
    """The most a job can cost (its hold) for the form's current values."""
    rates = {c.name: c.on_demand_rate for c in gpu_class_list()}
    try:
        rate = rates[request.GET.get("gpu_class", "")]
        gpus = int(request.GET.get("gpu_count", "1"))
        seconds = int(request.GET.get("max_duration_s", "0"))
    except (KeyError, ValueError):
        return HttpResponse('<span class="muted">Pick a class, GPUs and a duration.</span>')
    if gpus < 1 or seconds < 1:
        return HttpResponse('<span class="muted">GPUs and duration must be positive.</span>')
    return render(request, "marketplace/compute/_estimate.html", {
        "hold": estimate(gpus, seconds, rate), "rate": rate, "gpus": gpus, "seconds": seconds})
