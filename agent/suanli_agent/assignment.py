"""One assignment on this node: run its work, report usage, deliver the final report."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from suanli_agent.client import (
    AgentClient,
    AgentClientError,
    ApiError,
    Backoff,
    retry_until_answered,
)
from suanli_agent.config import AgentConfig
from suanli_agent.logs import LogShipper, LogSpool, spool_directory
from suanli_agent.outputs import OutputUploader, outputs_directory
from suanli_agent.runner import (
    Execution,
    ImageRefused,
    InvalidSpec,
    Outcome,
    WorkloadPolicy,
    build_execution,
)
from suanli_agent.state import RunRecord, RunStateStore

CLOSED_CODE = "assignment_closed"
SHUTDOWN_REASON = "agent shutting down"
# The server refuses, and counts against this node, AI tokens past this many per GPU-second
# (its default SCHEDULER_AI_TOKENS_PER_GPU_S, scheduler.services.plausibility). A workload
# counts its own tokens: what it claims past the rate is capped here, so a buyer's job
# cannot get the node that runs it refused and flagged.
AI_TOKENS_PER_GPU_S_MAX = 10**9


@dataclass(frozen=True)
class Lease:
    """One entry of the lease answer's ``assignments``."""

    id: int
    job_id: int
    gpu_count: int
    spec: dict[str, Any]
    max_duration_s: int | None
    lease_expires_at: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Lease:
        max_duration = data.get("max_duration_s")
        spec = data.get("spec")
        return cls(
            id=int(data["id"]),
            job_id=int(data.get("job_id") or 0),
            gpu_count=max(1, int(data.get("gpu_count") or 1)),
            spec=spec if isinstance(spec, dict) else {},
            max_duration_s=None if max_duration is None else int(max_duration),
            lease_expires_at=data.get("lease_expires_at"),
        )


class AssignmentRun:
    """A thread that runs one assignment from start to its final report.

    Usage goes out once right after the start (seq 1, 0 GPU-seconds on a fresh run) and
    then every ``usage_interval_s``, cumulative and with a sequence number that only grows
    when the server has answered, so the server sees 1, 2, 3... even across outages.
    A kill (server order, ``action: stop``, 409 ``assignment_closed``, or no longer
    leased) ends the work without a complete or fail report.
    """

    def __init__(
        self,
        *,
        lease: Lease,
        gpu_indices: list[int],
        client: AgentClient,
        config: AgentConfig,
        store: RunStateStore,
        log: logging.LoggerAdapter[logging.Logger],
        on_exit: Callable[[AssignmentRun], None],
        shutdown: threading.Event,
        record: RunRecord | None = None,
        policy: WorkloadPolicy | None = None,
    ) -> None:
        self.policy = policy or WorkloadPolicy()
        self.lease = lease
        self.id = lease.id
        self.gpu_indices = gpu_indices
        self.client = client
        self.config = config
        self.store = store
        self.log = log
        self.on_exit = on_exit
        self.shutdown = shutdown
        self.record = record or RunRecord(assignment_id=lease.id, job_id=lease.job_id)
        self.execution: Execution | None = None
        self.final_delivered = False
        self.forgotten = False
        self._stop_reason: str | None = None
        self._report_on_stop = False
        self._usage_undelivered = False
        self._image_reported = False
        self._lock = threading.Lock()
        # What a previous agent already reported for this run, when resuming it.
        self._base_elapsed_s = self.record.elapsed_s
        self._base_ai_tokens = self.record.ai_tokens
        self._thread = threading.Thread(
            target=self._main, name=f"assignment-{self.id}", daemon=True
        )
        # The run's log and outputs, on disk beside the run state (suanli_agent.logs,
        # suanli_agent.outputs).
        self.spool: LogSpool | None = None
        self.shipper: LogShipper | None = None
        self.outputs_dir = outputs_directory(store.directory, lease.id)

    def _open_log(self) -> LogSpool:
        if self.spool is None:
            self.spool = LogSpool(spool_directory(self.store.directory), self.id)
            self.shipper = LogShipper(spool=self.spool, client=self.client,
                                      assignment_id=self.id, log=self.log)
        return self.spool

    def _finish_log(self) -> None:
        """Everything the run printed reaches the server before anything else is said."""
        spool = self._open_log()
        spool.close()
        assert self.shipper is not None
        if self.shipper.drain(stop=self.shutdown, backoff_base_s=self.config.backoff_base_s,
                              backoff_cap_s=self.config.backoff_cap_s):
            spool.discard()

    def _upload_outputs(self, uploader: OutputUploader | None) -> None:
        if uploader is not None:
            uploader.upload(stop=self.shutdown)
            if uploader.uploaded or uploader.failed:
                self.log.info("assignment %s outputs: %d uploaded, %d failed", self.id,
                              len(uploader.uploaded), len(uploader.failed))

    def _declare_outputs(self) -> OutputUploader | None:
        uploader = OutputUploader(client=self.client, assignment_id=self.id,
                                  directory=self.outputs_dir, log=self.log,
                                  backoff_base_s=self.config.backoff_base_s,
                                  backoff_cap_s=self.config.backoff_cap_s)
        return uploader if uploader.declare(stop=self.shutdown) else None

    # -- control from the node loop -------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def working(self) -> bool:
        """True while the work itself runs (not while only a final report is pending)."""
        with self._lock:
            return self._stop_reason is None and self.record.final is None and self.alive

    def stop(self, reason: str, *, report_usage: bool = True) -> None:
        """End the work without a final report. Returns at once."""
        with self._lock:
            if self._stop_reason is not None or self.record.final is not None:
                return
            self._stop_reason = reason
            self._report_on_stop = report_usage
            execution = self.execution
        if execution is not None:
            execution.kill()

    # -- the thread ---------------------------------------------------------------

    def _main(self) -> None:
        try:
            if self.record.final is None:
                self._run_work()
            if self.record.final is not None and not self.forgotten:
                self._finish_log()
                uploader = self._declare_outputs()
                self._deliver_final()
                self._upload_outputs(uploader)
        except Exception:
            self.log.exception("assignment %s: unexpected error", self.id)
        finally:
            self.on_exit(self)

    def _run_work(self) -> None:
        spool = self._open_log()
        try:
            execution = build_execution(
                spec=self.lease.spec,
                gpu_indices=self.gpu_indices,
                max_duration_s=self.lease.max_duration_s,
                grace_s=self.config.kill_grace_s,
                log=self.log,
                already_elapsed_s=self._base_elapsed_s,
                extra_env={
                    "SUANLI_ASSIGNMENT_ID": str(self.id),
                    "SUANLI_JOB_ID": str(self.lease.job_id),
                },
                policy=self.policy,
                container_name=f"suanli-a{self.id}",
                on_output=spool.write_line,
                outputs_to=self.outputs_dir,
            )
        except ImageRefused as error:
            self.log.warning("assignment %s: %s", self.id, error)
            self._set_final(Outcome(exit_code=None, reason=str(error)))
            return
        except InvalidSpec as error:
            self.log.warning("assignment %s: invalid spec: %s", self.id, error)
            self._set_final(Outcome(exit_code=None, reason=f"invalid spec: {error}"))
            return
        with self._lock:
            if self._stop_reason is None:
                self.execution = execution
        if self.execution is None:
            self._after_stop()
            return
        # Before the clock: a pull is neither the buyer's time nor the node's fault.
        failure = execution.prepare()
        with self._lock:
            stopped = self._stop_reason is not None
            if not stopped and failure is None:
                execution.start()
                assert self.shipper is not None
                self.shipper.start()
        if stopped:
            self._after_stop()
            return
        if failure is not None:
            self.log.warning("assignment %s: %s", self.id, failure.reason)
            self._set_final(failure)
            return
        gpus = ",".join(str(i) for i in self.gpu_indices)
        verb = "resuming" if self.record.last_seq else "starting"
        self.log.info(
            "%s assignment %s (job %s) on GPUs %s: %s",
            verb,
            self.id,
            self.lease.job_id,
            gpus,
            execution.description,
        )
        self._report_usage()
        while True:
            outcome = execution.wait(self.config.usage_interval_s)
            if self._stop_reason is not None:
                break
            if outcome is not None:
                self._set_final(outcome)
                return
            self._report_usage()
        execution.wait(self.config.kill_grace_s + 5)
        self._after_stop()

    def _after_stop(self) -> None:
        """The work was stopped: say once how much was used, then forget the run (unless
        the agent itself is shutting down, so that a restart can resume it)."""
        if self._stop_reason == SHUTDOWN_REASON:
            self.log.info("stopped assignment %s (agent shutting down; resumable)", self.id)
            if self.shipper is not None:
                self.shipper.stop()  # the spool stays open: a restart appends to it
        else:
            self.log.info("killed assignment %s (%s)", self.id, self._stop_reason)
        if self._report_on_stop and not self.forgotten:
            self._report_usage(quiet=True)
        if self._stop_reason != SHUTDOWN_REASON:
            # A canceled run's log and outputs still go, while the server takes them.
            self._finish_log()
            self._upload_outputs(self._declare_outputs())
        if not self.forgotten and self._stop_reason != SHUTDOWN_REASON:
            self.store.delete(self.id)

    def _usage_now(self) -> tuple[int, int, float]:
        execution = self.execution
        elapsed = self._base_elapsed_s + (execution.elapsed_s() if execution else 0.0)
        # Rounded first so that 1.0 + 1.9999999999 counts as 3 whole seconds.
        gpu_seconds = math.floor(round(elapsed, 6)) * self.lease.gpu_count
        ai_tokens = self._base_ai_tokens + (execution.ai_tokens() if execution else 0)
        ai_tokens = min(ai_tokens, AI_TOKENS_PER_GPU_S_MAX * self.lease.gpu_count
                        * max(1, math.ceil(elapsed)))
        # Cumulative figures never go down.
        return (
            max(gpu_seconds, self.record.gpu_seconds),
            max(ai_tokens, self.record.ai_tokens),
            elapsed,
        )

    def _report_usage(self, *, quiet: bool = False) -> None:
        gpu_seconds, ai_tokens, elapsed = self._usage_now()
        seq = self.record.last_seq + 1
        extra = None if self._image_reported else self._image_report()
        try:
            answer = self.client.usage(
                self.id, seq=seq, gpu_seconds=gpu_seconds, ai_tokens=ai_tokens, extra=extra
            )
        except ApiError as error:
            if error.status == 409 and error.code == CLOSED_CODE:
                self.log.info("assignment %s closed by the server, stopping it", self.id)
                self._forget()
                return
            if not error.retryable:
                # Answered but refused: move past this seq so the next report is new.
                self.record.last_seq = seq
                self.store.save(self.record)
            self.log.warning("usage seq %s for assignment %s refused: %s", seq, self.id, error)
            return
        except AgentClientError as error:
            # Said once per outage; the next report carries the cumulative figures anyway.
            if not quiet and not self._usage_undelivered:
                self._usage_undelivered = True
                self.log.warning(
                    "usage seq %s for assignment %s not delivered (%s), will send it later",
                    seq,
                    self.id,
                    error,
                )
            return
        self._usage_undelivered = False
        self._image_reported = True
        self.record.last_seq = seq
        self.record.gpu_seconds = gpu_seconds
        self.record.ai_tokens = ai_tokens
        self.record.elapsed_s = elapsed
        self.store.save(self.record)
        accepted = answer.get("accepted", True)
        self.log.info(
            "usage seq %s gpu_seconds=%s ai_tokens=%s for assignment %s%s",
            seq,
            gpu_seconds,
            ai_tokens,
            self.id,
            "" if accepted else " (not accepted)",
        )
        if answer.get("action") == "stop":
            self.stop("server answered stop", report_usage=False)

    def _image_report(self) -> dict[str, Any] | None:
        image = getattr(self.execution, "image", None)
        if not image:
            return None
        digest = getattr(self.execution, "image_digest", None)
        return {"image": image, "image_digest": digest or ""}

    def _forget(self) -> None:
        self.forgotten = True
        self.stop("assignment closed", report_usage=False)
        self.store.delete(self.id)

    def _set_final(self, outcome: Outcome) -> None:
        gpu_seconds, ai_tokens, elapsed = self._usage_now()
        body: dict[str, Any] = {
            "seq": self.record.last_seq + 1,
            "gpu_seconds": gpu_seconds,
            "ai_tokens": ai_tokens,
        }
        if outcome.succeeded:
            kind = "complete"
            body["exit_code"] = 0
        else:
            kind = "fail"
            body["reason"] = outcome.reason or f"exit code {outcome.exit_code}"
            body["exit_code"] = outcome.exit_code
        with self._lock:
            self.record.final = {"kind": kind, "body": body}
            self.record.elapsed_s = elapsed
        self.store.save(self.record)
        if kind == "fail":
            self.log.info(
                "assignment %s failed locally (exit code %s): %s",
                self.id,
                outcome.exit_code,
                body["reason"].splitlines()[0] if body["reason"] else "",
            )

    def _deliver_final(self) -> None:
        assert self.record.final is not None
        kind = str(self.record.final["kind"])
        body = dict(self.record.final["body"])
        backoff = Backoff(base_s=self.config.backoff_base_s, cap_s=self.config.backoff_cap_s)

        def on_retry(error: AgentClientError, delay: float) -> None:
            self.log.warning(
                "%s of assignment %s not delivered (%s) - retrying in %.1fs",
                kind,
                self.id,
                error,
                delay,
            )

        try:
            answer = retry_until_answered(
                lambda: self.client.finish(self.id, kind=kind, body=body),
                backoff=backoff,
                stop=self.shutdown,
                on_retry=on_retry,
            )
        except ApiError as error:
            if error.status == 409 and error.code == CLOSED_CODE:
                self.log.info("assignment %s already closed by the server, forgetting it", self.id)
            else:
                self.log.error("%s of assignment %s refused: %s", kind, self.id, error)
            self._mark_done()
            return
        if answer is None:  # shutting down; the record keeps the report for the next start
            self.log.info("%s of assignment %s kept for the next start", kind, self.id)
            return
        self._mark_done()
        summary = f"gpu_seconds={body['gpu_seconds']} seq={body['seq']}"
        if kind == "complete":
            self.log.info("completed assignment %s (%s)", self.id, summary)
        else:
            self.log.info("reported failure of assignment %s (%s)", self.id, summary)

    def _mark_done(self) -> None:
        self.final_delivered = True
        self.record.done = True
        self.record.final = None
        self.store.save(self.record)
