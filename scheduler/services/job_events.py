"""A job's end, told to its organization's webhook endpoints (banking.services.webhooks):
once per job, inside the transaction that ended it."""

from banking.services.webhooks import webhook_event_emit
from scheduler.models import Assignment, Job

ENDED = {Job.State.SUCCEEDED: "job.succeeded", Job.State.FAILED: "job.failed",
         Job.State.CANCELED: "job.canceled"}


def job_ended_emit(job: Job) -> None:
    event = ENDED.get(Job.State(job.state))
    if event is None:
        return
    last = Assignment.objects.filter(job_id=job.pk).order_by("-id").values_list(
        "exit_code", flat=True).first()
    webhook_event_emit(
        organization_id=job.organization_id, type=event, key=f"{event}:{job.pk}",
        data={"object": {"id": job.pk, "state": job.state, "exit_code": last,
                         "failure_reason": job.failure_reason, "attempts": job.attempts,
                         "finished_at": job.finished_at.isoformat() if job.finished_at
                         else None}})
