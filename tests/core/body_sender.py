"""A stranger's oversized request over a raw socket, and the memory of the process that
answers it: what the request-body cap (core.request_bounds) must hold against."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the server did not listen: {log.read_text()[-2000:]}")


@contextmanager
def server(kind: str, log: Path) -> Iterator[tuple[int, int]]:
    """A live server process on a free port, as the deployment runs it: gunicorn's sync
    worker on config.wsgi, or uvicorn on config.asgi (the agents' server). Yields the port
    and the pid of the process that handles requests."""
    port = free_port()
    if kind == "wsgi":
        argv = [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--workers", "1",
                "--bind", f"127.0.0.1:{port}", "--log-level", "warning"]
    else:
        argv = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host",
                "127.0.0.1", "--port", str(port), "--lifespan", "off", "--log-level", "warning"]
    out = open(log, "w")  # noqa: SIM115  closed below
    proc = subprocess.Popen(argv, cwd=ROOT, env=dict(os.environ), stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_listening(port, proc, log)
        yield port, _handler_pid(proc.pid) if kind == "wsgi" else proc.pid
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        out.close()


def _handler_pid(master: int) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise AssertionError("gunicorn started no worker")


def memory_kib(pid: int) -> dict[str, int]:
    """The process's resident memory now (VmRSS) and at its peak so far (VmHWM), in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def post_oversized(port: int, path: str, total: int, *, chunked: bool,
                   headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """POST `total` bytes to `path`, sending until the server answers (or closes), and
    return the status and body of its answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
             "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    piece = b"[" * MIB
    framed = f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece
    sent = 0
    answer = b""
    while sent < total:
        readable, writable, _ = select.select([sock], [sock], [], 30)
        if readable:
            break
        if writable:
            try:
                sock.sendall(framed)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
    else:
        if chunked:
            sock.sendall(b"0\r\n\r\n")
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
            if b"\r\n\r\n" in answer and _complete(answer):
                break
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head, "no answer from the server"
    return int(head.split()[1]), body


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False
