"""The per-node loop: heartbeat, lease, start and stop runs to match what the server says."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from suanli_agent import AGENT_VERSION
from suanli_agent.assignment import SHUTDOWN_REASON, AssignmentRun, Lease
from suanli_agent.client import AgentClient, AgentClientError, ApiError, Backoff
from suanli_agent.config import AgentConfig
from suanli_agent.containers import HOST_ISOLATION
from suanli_agent.gpus import Gpu, GpuPool
from suanli_agent.runner import WorkloadPolicy
from suanli_agent.state import RunRecord, RunStateStore

logger = logging.getLogger("suanli.agent")

MIN_HEARTBEAT_S = 0.2
MAX_HEARTBEAT_S = 300.0
ISOLATION_EVERY_BEATS = 60


class NodeLogAdapter(logging.LoggerAdapter[logging.Logger]):
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[{self.extra['node'] if self.extra else '?'}] {msg}", kwargs


class Node:
    """One GPU node's agent. ``run()`` blocks until ``stop()``; ``start()`` runs it in a
    thread. Several nodes can share a process (``--simulate``)."""

    def __init__(
        self,
        *,
        client: AgentClient,
        gpus: list[Gpu],
        name: str,
        config: AgentConfig | None = None,
        store: RunStateStore | None = None,
        policy: WorkloadPolicy | None = None,
    ) -> None:
        self.client = client
        self.policy = policy or WorkloadPolicy()
        self.pool = GpuPool(gpus)
        self.name = name
        self.config = config or AgentConfig()
        self.store = store or RunStateStore()
        self.log = NodeLogAdapter(logger, {"node": name})
        self.status: str | None = None
        self.runs: dict[int, AssignmentRun] = {}
        self.finished: set[int] = set()
        self._waiting_logged: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reachable = True
        self._lease_refused: str | None = None
        self._lease_due = True
        self._last_lease: dict[str, Any] | None = None
        self._last_lease_at = 0.0
        self._thread: threading.Thread | None = None
        self._push_thread: threading.Thread | None = None
        # One lease applied at a time: the node loop and the push both apply leases.
        self._apply_lock = threading.Lock()
        self.push_active = False
        self._beats = 0
        self._isolation_said = False

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"node-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, *, timeout: float = 30.0) -> None:
        """Stop the loop and the local work. Runs stopped this way keep their records, so
        an agent started again with the same token and state resumes them if still leased."""
        self._stop.set()
        with self._lock:
            runs = list(self.runs.values())
        for run in runs:
            run.stop(SHUTDOWN_REASON)
        for run in runs:
            run.join(timeout)
        if self._thread is not None:
            self._thread.join(timeout)
        self.client.close()  # ends a lease wait in flight
        if self._push_thread is not None:
            self._push_thread.join(timeout)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        self.store.prune()
        self._resume_pending_reports()
        if self.config.lease_wait_s > 0:
            self._push_thread = threading.Thread(
                target=self._push_loop, name=f"push-{self.name}", daemon=True)
            self._push_thread.start()
        backoff = Backoff(base_s=self.config.backoff_base_s, cap_s=self.config.backoff_cap_s)
        interval = self.config.heartbeat_s
        while not self._stop.is_set():
            try:
                interval = self._heartbeat()
                if self._lease_wanted():
                    self._lease()
                elif self._last_lease is not None:
                    # Nothing changed on the server; runs waiting for GPUs that have freed
                    # since start now.
                    self._apply_lease(self._last_lease)
            except AgentClientError as error:
                delay = backoff.next_delay()
                self._reachable = False
                if isinstance(error, ApiError) and not error.retryable:
                    self.log.error("server refused the agent: %s - retrying in %.1fs", error, delay)
                else:
                    self.log.warning("server unreachable (%s) - retrying in %.1fs", error, delay)
                self._stop.wait(delay)
                continue
            except Exception:  # never let one bad answer kill the node loop
                delay = backoff.next_delay()
                self.log.exception("unexpected error in the node loop - retrying in %.1fs", delay)
                self._stop.wait(delay)
                continue
            backoff.reset()
            self._stop.wait(interval)
        self.log.info("node loop stopped")

    # -- heartbeat and lease --------------------------------------------------------

    def heartbeat_body(self) -> dict[str, Any]:
        busy = self.pool.busy_count
        total = self.pool.total
        with self._lock:
            running = sorted(run.id for run in self.runs.values() if run.working)
        body: dict[str, Any] = {
            "free_gpus": total - busy,
            "busy_gpus": busy,
            "utilization": round(busy / total, 4) if total else 0.0,
            "agent_version": AGENT_VERSION,
            "gpus": [gpu.as_json() for gpu in self.pool.gpus],
            "running": running,
        }
        # Said on the first beat, after an outage, and now and then: the server writes it
        # only when it changes, and a beat that carries it skips the write-behind buffer.
        if not self._isolation_said or self._beats % ISOLATION_EVERY_BEATS == 0:
            body["isolation"] = self.isolation()
        return body

    def isolation(self) -> dict[str, Any]:
        """How this node runs buyers' commands, as the server places by it."""
        container = self.policy.container
        described: dict[str, Any] = dict(container.describe() if container else HOST_ISOLATION)
        described["network"] = self.policy.network if container else "none"
        described["host_execution"] = container is None and self.policy.allow_host_execution
        if container is not None and self.policy.default_image:
            described["default_image"] = self.policy.default_image
        return described

    def _heartbeat(self) -> float:
        body = self.heartbeat_body()
        self._beats += 1
        answer = self.client.heartbeat(body)
        if "isolation" in body:
            self._isolation_said = True
        status = str(answer.get("status", "unknown"))
        # A server that gives no hint wants the lease read after every beat; so does a
        # change of status (approved, drained) or a return after an outage.
        self._lease_due = (answer.get("lease_due", True) is not False
                           or status != self.status or not self._reachable)
        try:
            interval = float(answer.get("next_heartbeat_s") or self.config.heartbeat_s)
        except (TypeError, ValueError):
            interval = self.config.heartbeat_s
        interval = min(MAX_HEARTBEAT_S, max(MIN_HEARTBEAT_S, interval))
        if not self._reachable:
            self._isolation_said = False
            self.log.info("server reachable again, heartbeat ok (%s)", status)
        elif status != self.status:
            self.log.info("heartbeat ok, status %s, next in %gs", status, interval)
        else:
            self.log.debug("heartbeat ok (%s)", status)
        self._reachable = True
        self.status = status
        return interval

    def _lease_wanted(self) -> bool:
        return (self._lease_due or self._last_lease is None
                or time.monotonic() - self._last_lease_at >= self.config.lease_at_least_s)

    def _lease(self) -> None:
        """Read the lease (after a good heartbeat that calls for it). A final refusal (say,
        a token revoked) is logged once, the last lease is no longer acted on, and the
        heartbeats go on at their normal pace."""
        try:
            answer = self.client.lease()
        except ApiError as error:
            if error.retryable:
                raise
            self._last_lease = None
            if error.code != self._lease_refused:
                self._lease_refused = error.code
                self.log.warning("lease refused (node status %s): %s", self.status, error)
            return
        if self._lease_refused is not None:
            self._lease_refused = None
            self.log.info("lease accepted again")
        self._last_lease, self._last_lease_at = answer, time.monotonic()
        self._apply_lease(answer)

    # -- lease push ---------------------------------------------------------------

    def _push_loop(self) -> None:
        """Hold a lease wait open and apply each lease it brings, at once. Errors back off;
        a server that holds no waits is left alone for a while (the beats' hints and the
        lease floor carry on meanwhile)."""
        backoff = Backoff(base_s=self.config.backoff_base_s, cap_s=self.config.backoff_cap_s)
        while not self._stop.is_set():
            try:
                answer = self.client.lease_wait(self.config.lease_wait_s)
            except ApiError as error:
                self.push_active = False
                if error.code == "lease_push_unavailable" or not error.retryable:
                    self.log.debug("lease push unavailable (%s)", error)
                    self._stop.wait(self.config.lease_push_retry_s)
                else:
                    self._stop.wait(backoff.next_delay())
                continue
            except AgentClientError:
                self.push_active = False
                self._stop.wait(backoff.next_delay())
                continue
            except Exception:  # never let one bad answer end the push for good
                self.push_active = False
                self.log.exception("unexpected error in the lease push")
                self._stop.wait(backoff.next_delay())
                continue
            backoff.reset()
            if "changed" not in answer:  # a server that ignores `wait`: no push there
                self.push_active = False
                self._stop.wait(self.config.lease_push_retry_s)
                continue
            self.push_active = True
            if answer.get("changed") and not self._stop.is_set():
                self._last_lease, self._last_lease_at = answer, time.monotonic()
                self._apply_lease(answer)

    def _apply_lease(self, answer: dict[str, Any]) -> None:
        with self._apply_lock:
            self._apply_lease_now(answer)

    def _apply_lease_now(self, answer: dict[str, Any]) -> None:
        leases = [Lease.from_json(item) for item in answer.get("assignments") or []]
        kill = {int(i) for i in answer.get("kill") or []}
        listed = {lease.id for lease in leases}
        with self._lock:
            runs = dict(self.runs)
        for assignment_id, run in runs.items():
            if assignment_id in kill:
                run.stop("on server order")
            elif assignment_id not in listed and run.working:
                run.stop("no longer leased to this node")
        for lease in leases:
            if lease.id in kill or lease.id in runs or lease.id in self.finished:
                continue
            self._start(lease)

    def _start(self, lease: Lease) -> None:
        record = self.store.get(lease.id)
        if record is not None and record.done:
            self.finished.add(lease.id)
            return
        if lease.gpu_count > self.pool.total:
            self.log.warning(
                "assignment %s needs %s GPUs, this node has %s: reporting failure",
                lease.id,
                lease.gpu_count,
                self.pool.total,
            )
            record = record or RunRecord(assignment_id=lease.id, job_id=lease.job_id)
            record.final = {
                "kind": "fail",
                "body": {
                    "seq": record.last_seq + 1,
                    "gpu_seconds": record.gpu_seconds,
                    "ai_tokens": record.ai_tokens,
                    "reason": f"needs {lease.gpu_count} GPUs, node has {self.pool.total}",
                    "exit_code": None,
                },
            }
            self.store.save(record)
            self._launch(lease, [], record)
            return
        indices = self.pool.allocate(lease.gpu_count)
        if indices is None:
            if lease.id not in self._waiting_logged:
                self._waiting_logged.add(lease.id)
                self.log.info(
                    "assignment %s waits for %s free GPUs (%s free)",
                    lease.id,
                    lease.gpu_count,
                    self.pool.free_count,
                )
            return
        self._waiting_logged.discard(lease.id)
        self._launch(lease, indices, record)

    def _launch(self, lease: Lease, indices: list[int], record: RunRecord | None) -> None:
        run = AssignmentRun(
            lease=lease,
            gpu_indices=indices,
            client=self.client,
            config=self.config,
            store=self.store,
            log=self.log,
            on_exit=self._on_run_exit,
            shutdown=self._stop,
            record=record,
            policy=self.policy,
        )
        with self._lock:
            self.runs[lease.id] = run
        run.start()

    def _on_run_exit(self, run: AssignmentRun) -> None:
        self.pool.release(run.gpu_indices)
        with self._lock:
            if self.runs.get(run.id) is run:
                del self.runs[run.id]
            # Finished, failed, killed or forgotten: never start it again in this agent,
            # even if a lease answered before the server closed it still lists it.
            if not self._stop.is_set():
                self.finished.add(run.id)

    def _resume_pending_reports(self) -> None:
        """Deliver final reports left undelivered by a previous agent with this state."""
        for record in self.store.all():
            if record.done:
                self.finished.add(record.assignment_id)
            elif record.final is not None:
                self.log.info(
                    "delivering the pending %s of assignment %s",
                    record.final.get("kind"),
                    record.assignment_id,
                )
                lease = Lease(
                    id=record.assignment_id,
                    job_id=record.job_id,
                    gpu_count=1,
                    spec={},
                    max_duration_s=None,
                    lease_expires_at=None,
                )
                self._launch(lease, [], record)
