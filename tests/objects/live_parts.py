"""Real parts for the logs and outputs suites: a real node agent process on a node token
that runs the job in real podman (the local busybox test image as its default image), an
S3-protocol server (moto_server) as its own process, and a TCP proxy that can cut the
agent off from the server."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.podman_setup import podman_available, podman_machine_prepare

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AgentProcess:
    def __init__(self, *, server: str, token: str, state_dir: Path, log: Path,
                 image: str) -> None:
        self.server, self.token, self.state_dir, self.log_path = server, token, state_dir, log
        self.image = image
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.log_path, "a")  # noqa: SIM115  lives with the process
        env = {**os.environ, "SUANLI_NODE_TOKEN": self.token}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "suanli_agent", "--server", self.server, "--gpus", "1",
             "--gpu-class", "H100-80GB", "--container-runtime", "podman", "--default-image",
             self.image, "--state-dir",
             str(self.state_dir), "--heartbeat-s", "1", "--usage-interval-s", "1",
             "--backoff-cap-s", "2", "--http-timeout-s", "3"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def kill_hard(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


_machine: dict[str, str] = {}


def podman_image(conf_dir: Path) -> str:
    """The test image, with this machine's containers.conf named in CONTAINERS_CONF (which
    the agent inherits); prepared once a session."""
    if not podman_available():
        pytest.skip("podman and busybox-static are needed (.ci/run installs them)")
    if "image" not in _machine:
        _machine["image"] = podman_machine_prepare(conf_dir)
    return _machine["image"]


def wait_isolated(node_id: int) -> None:
    """Until the agent's heartbeat has said it runs commands in containers: the server
    takes a stranger's command only when a node of the class does."""
    from scheduler.models import Node
    from tests.live import wait_until

    wait_until(lambda: Node.objects.filter(pk=node_id, isolation="container").exists(), 60,
               "the node isolated")


@pytest.fixture
def agent_process(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []
    image = podman_image(tmp_path_factory.mktemp("podman"))

    def make(server: str, token: str) -> AgentProcess:
        agent = AgentProcess(server=server, token=token, state_dir=tmp_path / "agent-state",
                             log=tmp_path / "agent.log", image=image)
        agent.start()
        started.append(agent)
        return agent

    yield make
    for agent in started:
        agent.stop()


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto's S3 server as a process of its own on a free port."""
    port = free_port()
    binary = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise AssertionError("moto_server did not start")
    yield f"http://127.0.0.1:{port}"
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)


def use_s3(settings: Any, endpoint: str, bucket: str) -> None:
    import boto3

    settings.STORAGES = {**settings.STORAGES, "objects": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": bucket, "endpoint_url": endpoint, "access_key": "test",
                    "secret_key": "test", "region_name": "us-east-1", "file_overwrite": True,
                    "querystring_auth": True, "signature_version": "s3v4"}}}
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test",
                 aws_secret_access_key="test", region_name="us-east-1").create_bucket(
        Bucket=bucket)


def use_filesystem(settings: Any, root: Path) -> None:
    settings.STORAGES = {**settings.STORAGES, "objects": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(root)}}}


class CuttableProxy:
    """A TCP proxy to `target`; `cut()` closes its listener and every connection (the
    agent sees connection refused), `restore()` listens again on the same port."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        if self._listener is not None:
            # shutdown first: a bare close does not wake the thread blocked in accept()
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
