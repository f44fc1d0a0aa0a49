"""Executing the work of one assignment: a simulated run or a real subprocess.

An execution knows nothing of the server. It runs, can be killed, and ends with an
``Outcome``; the caller reads ``elapsed_s`` and ``ai_tokens`` to report usage.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from suanli_agent.containers import MOUNT_POINT, ContainerRuntime, RunRequest
from suanli_agent.workload_spec import ImageReference, SimulatedSpec, SpecError, spec_check

TAIL_LINES = 20
REASON_LINES = 10
REASON_MAX_CHARS = 1000


class InvalidSpec(ValueError):
    """The job spec is refused by this agent: malformed, or asking what the node does not
    allow. Nothing was started."""


class ImageRefused(InvalidSpec):
    """The image names a registry this node's provider does not allow."""


@dataclass(frozen=True)
class Outcome:
    """How an execution ended. ``killed`` runs are not reported as complete or failed."""

    exit_code: int | None
    reason: str | None = None
    killed: bool = False

    @property
    def succeeded(self) -> bool:
        return not self.killed and self.reason is None and self.exit_code == 0


class Execution(Protocol):
    description: str

    def prepare(self) -> Outcome | None:
        """Work done before the clock starts (an image pull); an outcome if it failed."""
        ...

    def start(self) -> None: ...

    def elapsed_s(self) -> float: ...

    def ai_tokens(self) -> int: ...

    def wait(self, timeout: float) -> Outcome | None:
        """The outcome once finished, or None if still running after ``timeout`` seconds."""
        ...

    def kill(self) -> None:
        """Stop now (asynchronously); ``wait`` then returns a killed outcome."""
        ...


class SimulatedExecution:
    """Sleeps ``seconds`` (capped at ``max_duration_s``), counting AI tokens as it goes."""

    def __init__(
        self,
        *,
        seconds: float,
        ai_tokens_per_second: float = 0.0,
        fail: bool = False,
        exit_code: int | None = None,
        max_duration_s: float | None = None,
    ) -> None:
        self.seconds = max(0.0, seconds)
        self.rate = max(0.0, ai_tokens_per_second)
        self.fail = fail
        self.exit_code = exit_code
        self.max_duration_s = max_duration_s
        self._started: float | None = None
        self._ended_at: float | None = None
        self._killed = threading.Event()
        self._outcome: Outcome | None = None
        self._lock = threading.Lock()
        self.description = f"simulated {self.seconds:.1f}s"

    def _limit(self) -> float:
        if self.max_duration_s is None:
            return self.seconds
        return min(self.seconds, max(0.0, self.max_duration_s))

    def prepare(self) -> Outcome | None:
        return None

    def start(self) -> None:
        self._started = time.monotonic()

    def elapsed_s(self) -> float:
        if self._started is None:
            return 0.0
        end = self._ended_at if self._ended_at is not None else time.monotonic()
        return min(end - self._started, self._limit())

    def ai_tokens(self) -> int:
        return math.floor(self.elapsed_s() * self.rate)

    def _finish(self, outcome: Outcome) -> Outcome:
        with self._lock:
            if self._outcome is None:
                self._ended_at = time.monotonic()
                self._outcome = outcome
            return self._outcome

    def wait(self, timeout: float) -> Outcome | None:
        if self._outcome is not None:
            return self._outcome
        if self._started is None:
            raise RuntimeError("execution not started")
        remaining = self._started + self._limit() - time.monotonic()
        if self._killed.wait(max(0.0, min(timeout, remaining))):
            return self._finish(Outcome(exit_code=None, reason="killed", killed=True))
        if time.monotonic() - self._started < self._limit():
            return None
        if self.seconds > self._limit():
            return self._finish(
                Outcome(exit_code=None, reason=f"exceeded max duration of {self._limit():g}s")
            )
        if self.fail or (self.exit_code not in (None, 0)):
            code = self.exit_code if self.exit_code not in (None, 0) else 1
            return self._finish(Outcome(exit_code=code, reason="simulated failure"))
        return self._finish(Outcome(exit_code=0))

    def kill(self) -> None:
        self._killed.set()


@dataclass(frozen=True)
class WorkloadPolicy:
    """What this node lets a command spec do, set by its provider.

    With a container runtime every command runs in a container (the job's image, else
    ``default_image``). Without one, commands run only if the provider allowed host
    execution, and the server then places only the provider's own jobs here.
    """

    container: ContainerRuntime | None = None
    default_image: str | None = None
    allow_host_execution: bool = False
    allowed_registries: tuple[str, ...] = ()
    pull_timeout_s: float = 600.0
    work_root: Path | None = None
    network: str = "none"  # what the node offers: "none" or "internet"

    def registry_allowed(self, image: ImageReference) -> bool:
        if not self.allowed_registries:
            return True
        return (image.registry or DEFAULT_REGISTRY) in self.allowed_registries


DEFAULT_REGISTRY = "docker.io"
IMAGE_PULL_FAILED = "image_pull_failed"
OUT_OF_MEMORY = "out_of_memory"
SIGKILL_EXIT = 128 + signal.SIGKILL


class ProcessExecution:
    """A real command in its own process group, with the GPUs it was given: inside a
    container (``image`` with ``container``), or on the host where the provider allowed it.

    Killed (SIGTERM to the group, SIGKILL after ``grace_s``) on ``kill()`` or when it runs
    past ``max_duration_s``. The workload may write a running count of AI tokens it has
    processed into the file named by ``$SUANLI_AI_TOKENS_FILE``. Its run directory (0700)
    holds its environment file (0600) and the job directory, the only thing a container
    sees of the host (at /suanli); it is removed when the run ends.
    """

    def __init__(
        self,
        *,
        argv: list[str],
        environment: Mapping[str, str],
        gpu_indices: list[int],
        max_duration_s: float | None,
        grace_s: float,
        log: logging.LoggerAdapter[logging.Logger] | logging.Logger,
        extra_env: Mapping[str, str] | None = None,
        image: str | None = None,
        container: ContainerRuntime | None = None,
        container_name: str = "suanli-run",
        on_output: Callable[[str, str], None] | None = None,
        outputs_to: Path | None = None,
        network: str = "none",
        pull_timeout_s: float = 600.0,
        work_root: Path | None = None,
    ) -> None:
        self.argv = argv
        # Each line the run prints, with its stream (suanli_agent.logs), and where the
        # files it wrote under outputs/ are moved before its directory goes.
        self.on_output = on_output
        self.outputs_to = outputs_to
        self.image = image if container is not None else None
        self.container = container if image else None
        self.container_name = f"{container_name}-{secrets.token_hex(3)}"
        self.environment = dict(environment)
        self.gpu_indices = gpu_indices
        self.max_duration_s = max_duration_s
        self.grace_s = grace_s
        self.log = log
        self.extra_env = dict(extra_env or {})
        self.network = network
        self.pull_timeout_s = pull_timeout_s
        self.work_root = work_root
        self.image_digest: str | None = None
        self.stdout_tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.stderr_tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.description = f"command {' '.join(argv)[:80]!r}" + (
            f" in {self.container.kind} image {self.image}" if self.container else " on the host"
        )
        self._proc: subprocess.Popen[str] | None = None
        self._pull: subprocess.Popen[str] | None = None
        self._started: float | None = None
        self._ended_at: float | None = None
        self._killed = False
        self._timed_out = False
        self._done = threading.Event()
        self._outcome: Outcome | None = None
        self._stop_lock = threading.Lock()
        self._terminating = False
        self._workdir: str | None = None
        self._final_ai_tokens: int | None = None
        self._terminated = threading.Event()

    @property
    def job_dir(self) -> Path | None:
        return Path(self._workdir, "job") if self._workdir else None

    @property
    def tokens_file(self) -> Path | None:
        return Path(self._workdir, "job", "ai_tokens") if self._workdir else None

    def child_environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUANLI_")}
        env.update(self.environment)
        env.update(self.extra_env)
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in self.gpu_indices)
        if self.tokens_file is not None:
            env["SUANLI_AI_TOKENS_FILE"] = str(self.tokens_file)
            env["SUANLI_OUTPUTS_DIR"] = str(Path(self.tokens_file.parent, "outputs"))
        return env

    def container_environment(self) -> dict[str, str]:
        """Inside a container: the job's environment only; the runtime exposes its GPUs."""
        env = dict(self.environment)
        env.update(self.extra_env)
        env["SUANLI_AI_TOKENS_FILE"] = f"{MOUNT_POINT}/ai_tokens"
        env["SUANLI_OUTPUTS_DIR"] = f"{MOUNT_POINT}/outputs"
        return env

    def _make_run_dir(self) -> None:
        if self._workdir is not None:
            return
        if self.work_root is not None:
            self.work_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkdtemp makes it 0700: no other host user reaches the env file or the job dir.
        self._workdir = tempfile.mkdtemp(prefix="suanli-run-", dir=self.work_root)
        assert self.job_dir is not None
        self.job_dir.mkdir(mode=0o700)
        # What the job leaves in /suanli/outputs is uploaded at its end (agent.outputs);
        # the container's user may differ from ours.
        outputs = Path(self.job_dir, "outputs")
        outputs.mkdir()
        outputs.chmod(0o777)

    def prepare(self) -> Outcome | None:
        """Pull the image, before the clock starts; an outcome if that failed."""
        if self.container is None or self.image is None:
            return None
        container, image = self.container, self.image
        present = self._runtime(container.image_present_argv(image), timeout=60)
        if present is None or present.returncode != 0:
            self.log.info("pulling image %s (at most %gs)", image, self.pull_timeout_s)
            with self._stop_lock:
                if self._killed:
                    return Outcome(exit_code=None, reason="killed", killed=True)
                try:
                    self._pull = subprocess.Popen(
                        container.pull_argv(image), stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                        errors="replace", start_new_session=True)
                except OSError as error:
                    return Outcome(exit_code=None, reason=f"{IMAGE_PULL_FAILED}: {error}")
            try:
                _, stderr = self._pull.communicate(timeout=self.pull_timeout_s)
            except subprocess.TimeoutExpired:
                self._signal_group(self._pull, signal.SIGKILL)
                self._pull.communicate()
                return Outcome(exit_code=None, reason=f"{IMAGE_PULL_FAILED}: {image} not pulled "
                               f"within {self.pull_timeout_s:g}s")
            if self._killed:
                return Outcome(exit_code=None, reason="killed", killed=True)
            if self._pull.returncode != 0:
                tail = (stderr or "").strip().splitlines()[-3:]
                return Outcome(exit_code=None, reason=f"{IMAGE_PULL_FAILED}: {image}: "
                               + " ".join(tail)[-REASON_MAX_CHARS:])
        digest = self._runtime(container.digest_argv(image), timeout=60)
        if digest is not None and digest.returncode == 0:
            text = digest.stdout.strip()
            self.image_digest = text.rsplit("@", 1)[-1] or None
        self.description += f" ({self.image_digest or 'digest unknown'})"
        return None

    def _runtime(self, argv: list[str], *,
                 timeout: float) -> subprocess.CompletedProcess[str] | None:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                  check=False, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as error:
            self.log.warning("%s failed: %s", " ".join(argv[1:3]), error)
            return None

    def _launch_argv(self) -> tuple[list[str], dict[str, str]]:
        self._make_run_dir()
        assert self._workdir is not None and self.job_dir is not None
        tokens_file = Path(self._workdir, "job", "ai_tokens")
        tokens_file.touch(mode=0o600)
        if self.container is None or self.image is None:
            return self.argv, self.child_environment()
        env_file = Path(self._workdir, "env")
        lines = [f"{key}={value}\n" for key, value in self.container_environment().items()
                 if "\n" not in value and "\x00" not in value]
        fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("".join(lines))
        self.container.prepare_job_dir(self.job_dir)
        argv = self.container.run_argv(
            RunRequest(
                image=self.image,
                argv=self.argv,
                name=self.container_name,
                gpu_indices=self.gpu_indices,
                env_file=env_file,
                job_dir=self.job_dir,
                gpu_count=max(1, len(self.gpu_indices)),
                network=self.network,
            )
        )
        client_env = {k: v for k, v in os.environ.items() if not k.startswith("SUANLI_")}
        return argv, client_env

    def start(self) -> None:
        if self._killed:
            self._started = self._ended_at = time.monotonic()
            self._outcome = Outcome(exit_code=None, reason="killed", killed=True)
            self._done.set()
            return
        try:
            argv, env = self._launch_argv()
            self._started = time.monotonic()  # usage is metered from the container's start
            self._proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                start_new_session=True,
            )
        except OSError as error:
            self._started = self._ended_at = time.monotonic()
            self._outcome = Outcome(exit_code=None, reason=f"could not start command: {error}")
            self._cleanup()
            self._done.set()
            return
        readers = [
            self._reader(self._proc.stdout, self.stdout_tail, "stdout"),
            self._reader(self._proc.stderr, self.stderr_tail, "stderr"),
        ]
        threading.Thread(target=self._watch, args=(readers,), daemon=True).start()

    def _reader(self, stream: IO[str] | None, tail: deque[str], name: str) -> threading.Thread:
        def pump() -> None:
            if stream is None:
                return
            for line in stream:
                line = line.rstrip("\n")
                tail.append(line)
                if self.on_output is not None:
                    self.on_output(name, line)
            stream.close()

        thread = threading.Thread(target=pump, daemon=True)
        thread.start()
        return thread

    def _watch(self, readers: list[threading.Thread]) -> None:
        assert self._proc is not None
        try:
            self._proc.wait(timeout=self.max_duration_s)
        except subprocess.TimeoutExpired:
            self._timed_out = True
            self.log.info("max duration of %gs reached, stopping the command", self.max_duration_s)
            self._terminate_group()
        returncode = self._proc.wait()
        self._ended_at = time.monotonic()
        # The GPUs are only free once nothing of the run is left: no straggler of the
        # process group, no container still being stopped or removed.
        with self._stop_lock:
            terminating = self._terminating
        if terminating:
            self._terminated.wait(self.grace_s + 60)
        else:
            self._signal_group(self._proc, signal.SIGKILL)
        for reader in readers:
            reader.join(timeout=5)
        self._outcome = self._outcome_for(returncode)
        self._final_ai_tokens = self._read_ai_tokens()  # before the run directory goes
        self._keep_outputs()
        self._cleanup()
        self._done.set()

    def _outcome_for(self, returncode: int) -> Outcome:
        if self._killed:
            return Outcome(exit_code=None, reason="killed", killed=True)
        if self._timed_out:
            return Outcome(
                exit_code=None, reason=f"exceeded max duration of {self.max_duration_s:g}s"
            )
        if returncode == 0:
            return Outcome(exit_code=0)
        if self.container is not None and returncode == SIGKILL_EXIT:
            # The agent did not stop it, and a container's init cannot be SIGKILLed from
            # inside: the kernel's OOM killer did, at the container's memory limit.
            _, memory, _ = self.container.limits.for_gpus(max(1, len(self.gpu_indices)))
            return Outcome(exit_code=returncode, reason=f"{OUT_OF_MEMORY}: the container was "
                           f"killed at its memory limit of {memory // 1024**2} MiB")
        lines = list(self.stderr_tail) or list(self.stdout_tail)
        tail = "\n".join(lines[-REASON_LINES:])[-REASON_MAX_CHARS:]
        if returncode < 0:
            try:
                signame = signal.Signals(-returncode).name
            except ValueError:
                signame = f"signal {-returncode}"
            head = f"killed by {signame}"
            code: int | None = None
        else:
            head = f"exit code {returncode}"
            code = returncode
        return Outcome(exit_code=code, reason=f"{head}: {tail}" if tail else head)

    def _terminate_group(self) -> None:
        """SIGTERM the process group, SIGKILL it after the grace period. Blocking."""
        proc = self._proc
        if proc is None:
            return
        with self._stop_lock:
            if self._terminating:
                return
            self._terminating = True
        if self.container is not None:
            self._container_command(self.container.stop_argv(self.container_name, self.grace_s))
        self._signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=self.grace_s)
        except subprocess.TimeoutExpired:
            self.log.info("command ignored SIGTERM for %gs, sending SIGKILL", self.grace_s)
        # The leader may be gone while its children still hold the group.
        self._signal_group(proc, signal.SIGKILL)
        if self.container is not None:
            self._container_command(self.container.remove_argv(self.container_name))
        self._terminated.set()

    def _container_command(self, argv: list[str]) -> None:
        try:
            subprocess.run(argv, capture_output=True, timeout=self.grace_s + 30, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            self.log.warning("%s failed: %s", " ".join(argv[1:3]), error)

    @staticmethod
    def _signal_group(proc: subprocess.Popen[str], sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    def _keep_outputs(self) -> None:
        if self.outputs_to is None or self._workdir is None:
            return
        source = Path(self._workdir, "job", "outputs")
        if not source.is_dir() or not any(source.iterdir()):
            return
        try:
            if self.outputs_to.exists():
                shutil.rmtree(self.outputs_to)
            self.outputs_to.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(source), str(self.outputs_to))
        except OSError as error:
            self.log.warning("outputs of the run not kept: %s", error)

    def _cleanup(self) -> None:
        if not self._workdir:
            return
        shutil.rmtree(self._workdir, ignore_errors=True)
        if os.path.exists(self._workdir) and self.container is not None:
            # Rootless podman gave the job directory to a sub-uid: remove it as that user.
            self._container_command([self.container.executable, "unshare", "rm", "-rf",
                                     self._workdir])

    def elapsed_s(self) -> float:
        if self._started is None:
            return 0.0
        end = self._ended_at if self._ended_at is not None else time.monotonic()
        return end - self._started

    def ai_tokens(self) -> int:
        if self._final_ai_tokens is not None:
            return self._final_ai_tokens
        return self._read_ai_tokens()

    def _read_ai_tokens(self) -> int:
        path = self.tokens_file
        if path is None:
            return 0
        try:
            return max(0, int(path.read_text().strip() or 0))
        except (OSError, ValueError):
            return 0

    def wait(self, timeout: float) -> Outcome | None:
        if self._done.wait(max(0.0, timeout)):
            return self._outcome
        return None

    def kill(self) -> None:
        if self._done.is_set():
            return
        with self._stop_lock:
            self._killed = True
            pull = self._pull
        if pull is not None and pull.poll() is None:
            self._signal_group(pull, signal.SIGKILL)
        threading.Thread(target=self._terminate_group, daemon=True).start()


def build_execution(
    *,
    spec: Any,
    gpu_indices: list[int],
    max_duration_s: float | None,
    grace_s: float,
    log: logging.LoggerAdapter[logging.Logger] | logging.Logger,
    already_elapsed_s: float = 0.0,
    extra_env: Mapping[str, str] | None = None,
    policy: WorkloadPolicy | None = None,
    container_name: str = "suanli-run",
    on_output: Callable[[str, str], None] | None = None,
    outputs_to: Path | None = None,
) -> Execution:
    """The execution for a job spec, checked as the server checks it before anything
    starts. A resumed simulated run only runs what is left of it; a resumed command starts
    over (the agent cannot checkpoint it)."""
    policy = policy or WorkloadPolicy()
    try:
        checked = spec_check(spec)
    except SpecError as error:
        raise InvalidSpec(f"{error.field}: {error.message}") from error
    remaining_max = None if max_duration_s is None else max(0.0, max_duration_s - already_elapsed_s)
    if isinstance(checked, SimulatedSpec):
        return SimulatedExecution(
            seconds=checked.seconds - already_elapsed_s,
            ai_tokens_per_second=checked.ai_tokens_per_second,
            fail=checked.fail,
            exit_code=checked.exit_code,
            max_duration_s=remaining_max,
        )
    if checked.network == "internet" and policy.network != "internet":
        raise InvalidSpec("spec.network: this node offers no internet access to jobs")
    image: str | None = None
    if policy.container is not None:
        reference = checked.image
        if reference is not None and not policy.registry_allowed(reference):
            raise ImageRefused(
                f"{IMAGE_PULL_FAILED}: registry {reference.registry or DEFAULT_REGISTRY} is not "
                f"among this node's allowed registries ({', '.join(policy.allowed_registries)})")
        image = reference.text if reference is not None else policy.default_image
        if image is None:
            raise InvalidSpec("spec.image: none given and this node has no default image")
    elif not policy.allow_host_execution:
        raise InvalidSpec("this node has no container runtime and does not run commands on "
                          "its host")
    return ProcessExecution(
        argv=checked.argv,
        environment=checked.environment,
        gpu_indices=gpu_indices,
        max_duration_s=remaining_max,
        grace_s=grace_s,
        log=log,
        extra_env=extra_env,
        image=image,
        container=policy.container,
        container_name=container_name,
        on_output=on_output,
        outputs_to=outputs_to,
        network=checked.network,
        pull_timeout_s=policy.pull_timeout_s,
        work_root=policy.work_root,
    )
