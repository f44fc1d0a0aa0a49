"""The platform fee in force: the latest an admin set for the GPU class, else the latest
global one, else SCHEDULER_PLATFORM_FEE_BPS. Locked into a job when it is submitted, as
its rate is, so a change applies to jobs submitted after it, never before."""

from django.conf import settings

from scheduler.models import Job, PlatformFee


def platform_fee_bps(gpu_class_id: int) -> int:
    for scope in ({"gpu_class_id": gpu_class_id}, {"gpu_class__isnull": True}):
        fee = (PlatformFee.objects.filter(**scope).order_by("-created_at", "-id")
               .values_list("fee_bps", flat=True).first())
        if fee is not None:
            return int(fee)
    return int(settings.SCHEDULER_PLATFORM_FEE_BPS)


def job_fee_bps(job: Job) -> int:
    """The fee locked into the job (jobs from before fees were locked: the setting)."""
    return job.fee_bps if job.fee_bps is not None else int(settings.SCHEDULER_PLATFORM_FEE_BPS)
