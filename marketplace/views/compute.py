"""Catalog and jobs: what a buyer does to run compute."""

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from banking.fiat_display import tokens_with_usd, usd_text
from core.errors import DomainError
from marketplace.forms import JobSubmitForm, apply_domain_error
from marketplace.models import Block
from marketplace.selectors import block_list, price_history_list
from marketplace.views.base import (
    OrganizationRequest,
    buyer_required,
    confirm_page,
    confirmed,
    found_or_404,
    query_text,
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
    since = timezone.now() - timedelta(days=PRICE_HISTORY_DAYS)
    classes = []
    for c in gpu_class_list():
        history = list(price_history_list(gpu_class_id=c.pk).filter(created_at__gte=since)
                       [:PRICE_HISTORY_POINTS])[::-1]
        last = history[-1] if history else None
        previous = history[-2] if len(history) > 1 else None
        classes.append({
            "cls": c, "regions": availability.get(c.pk, []), "history": history,
            "script_id": f"history-{c.pk}",
            "last_move": (last.on_demand_rate - previous.on_demand_rate
                          if last and previous else 0),
            "last_utilization": last.utilization_permille // 10 if last else None,
            "chart": [{"label": h.created_at.strftime("%m-%d %H:%M"), "value": h.on_demand_rate}
                      for h in history],
        })
    return render(request, "marketplace/compute/catalog.html", {
        "nav": "catalog", "classes": classes,
        "target_utilization": int(settings.BANK_PRICE_TARGET_UTILIZATION * 100),
        "price_step_percent": settings.BANK_PRICE_STEP_BPS / 100,
        "history_days": PRICE_HISTORY_DAYS,
    })

PRICE_HISTORY_DAYS = 30
PRICE_HISTORY_POINTS = 500


def _class_choices() -> list[tuple[str, str]]:
    return [(c.name, f"{c.name} — {usd_text(c.on_demand_rate)} "
                     f"({c.on_demand_rate:,} tokens) per GPU-hour")
            for c in gpu_class_list()]


def _usable_blocks(organization_id: int) -> list[Block]:
    """The buyer's blocks a job can still run on: active, window not over."""
    return list(block_list(organization_id=organization_id).filter(
        reservation__status="active", reservation__end__gt=timezone.now()).order_by("start"))


def _block_choices(blocks: list[Block]) -> list[tuple[str, str]]:
    now = timezone.now()
    return [(str(b.pk), f"Block #{b.pk}: {b.reservation.gpu_count} \u00d7 {b.gpu_class.name}, "
                        f"{b.start:%m-%d %H:%M} → {b.reservation.end:%m-%d %H:%M} UTC"
                        + (" (running now)" if b.start <= now else " (upcoming)"))
            for b in blocks]


@buyer_required
def jobs(request: OrganizationRequest) -> HttpResponse:
    org_id = request.organization.pk
    blocks = _usable_blocks(org_id)
    initial: dict[str, object] = {}
    preset = query_text(request, "block")
    if preset:
        initial["block"] = preset
        chosen = next((b for b in blocks if str(b.pk) == preset), None)
        if chosen is not None:
            initial.update(gpu_class=chosen.gpu_class.name, gpu_count=chosen.reservation.gpu_count)
    form = JobSubmitForm(request.POST or None, gpu_classes=_class_choices(),
                         blocks=_block_choices(blocks), initial=initial)
    if request.method == "POST" and form.is_valid():
        block = next((b for b in blocks if str(b.pk) == form.cleaned_data.get("block")), None)
        # a block job runs on the block's class: the class follows the block
        gpu_class = block.gpu_class.name if block else form.cleaned_data["gpu_class"]
        try:
            job = job_submit(
                organization_id=org_id, spec=form.spec(),
                gpu_class=gpu_class,
                gpu_count=form.cleaned_data["gpu_count"],
                max_duration_s=form.cleaned_data["max_duration_s"],
                priority=form.cleaned_data.get("priority") or 0,
                reservation_id=block.reservation_id if block else None,
                idempotency_key=form.posting_key,
            )
        except DomainError as exc:
            apply_domain_error(form, exc)
        else:
            if block:
                messages.success(request, f"Job #{job.pk} submitted on block #{block.pk}: "
                                          "nothing is held or charged beyond the block.")
            else:
                messages.success(request, f"Job #{job.pk} submitted; "
                                          f"{tokens_with_usd(job.hold_amount)} held until it "
                                          "ends (only what it uses is charged).")
            return redirect("store:job_detail", job_id=job.pk)
    return render(request, "marketplace/compute/jobs.html", {
        "nav": "jobs", "form": form, "jobs": job_list(organization_id=org_id)[:50],
        "block_shapes": {str(b.pk): {"gpu_class": b.gpu_class.name,
                                     "gpu_count": b.reservation.gpu_count} for b in blocks},
    })


@buyer_required
def job_rows(request: OrganizationRequest) -> HttpResponse:
    """The job table's body, polled by htmx for live status."""
    return render(request, "marketplace/compute/_job_rows.html",
                  {"jobs": job_list(organization_id=request.organization.pk)[:50]})


@buyer_required
def job_detail(request: OrganizationRequest, job_id: int) -> HttpResponse:
    job = found_or_404(lambda: job_get(organization_id=request.organization.pk, job_id=job_id))
    template = ("marketplace/compute/_job_live.html" if request.headers.get("HX-Request")
                else "marketplace/compute/job_detail.html")
    block = None
    if job.reservation_id:
        block = Block.objects.filter(pk=job.reservation_id,
                                     organization_id=request.organization.pk).first()
    active = job.state in ("queued", "placed", "running")
    return render(request, template, {
        "nav": "jobs", "job": job, "assignments": job_assignments(job_id=job.pk),
        "max_cost": job.hold_amount, "active": active, "job_block": block,
        "waits_for_window": bool(block and job.state == "queued"
                                 and block.start > timezone.now()),
        "outputs": output_list(job_id=job.pk),
    })


@buyer_required
@require_POST
def job_cancel_view(request: OrganizationRequest, job_id: int) -> HttpResponse:
    found = found_or_404(lambda: job_get(organization_id=request.organization.pk,
                                         job_id=job_id))
    if not confirmed(request):
        return confirm_page(
            request, title=f"Cancel job #{found.pk}?",
            text="The job is stopped now. What it has used so far is charged; the rest of "
                 "its hold goes back to your wallet.",
            button="Cancel the job", cancel_url=f"/jobs/{found.pk}/",
            cancel_label="Keep it running")
    try:
        job = job_cancel(organization_id=request.organization.pk, job_id=job_id)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Job #{job.pk} canceled; the unused hold went back to "
                                  "your wallet.")
    return redirect("store:job_detail", job_id=job_id)


def estimate(gpu_count: int, seconds: int, rate: int) -> int:
    return charge_for(gpu_count * seconds, rate)


@buyer_required
def job_estimate(request: OrganizationRequest) -> HttpResponse:
    """The most a job can cost (its hold) for the form's current values."""
    if query_text(request, "block"):
        return HttpResponse('<strong>Runs on your block</strong>: nothing is held and '
                            'nothing more is charged.')
    rates = {c.name: c.on_demand_rate for c in gpu_class_list()}
    try:
        rate = rates[query_text(request, "gpu_class") or ""]
        gpus = int(query_text(request, "gpu_count", max_length=8) or "1")
        seconds = int(query_text(request, "max_duration_s", max_length=12) or "0")
    except (KeyError, ValueError):
        return HttpResponse('<span class="muted">Pick a class, GPUs and a duration.</span>')
    if gpus < 1 or seconds < 1:
        return HttpResponse('<span class="muted">GPUs and duration must be positive.</span>')
    return render(request, "marketplace/compute/_estimate.html", {
        "hold": estimate(gpus, seconds, rate), "rate": rate, "gpus": gpus, "seconds": seconds})
