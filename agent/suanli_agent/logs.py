"""A run's log on the agent: captured to disk as it is printed, shipped in chunks at byte
offsets, kept across outages and agent restarts.

Every line is stored as ``O <text>\\n`` (stdout) or ``E <text>\\n`` (stderr) (``S`` marks
the agent's own notes), in the order
the agent read them from the two pipes: each stream's own order is exact, and lines of the
two streams are in the order they arrived. The spool file on disk is the log as the server
will have it, so shipping is "send bytes from the server's offset", resumable by anyone
who knows that offset: a resend of bytes the server has changes nothing, a gap is refused
with the server's offset and the agent sends from there.

The spool is bounded by the job's log cap: the first ``cap - tail`` bytes are kept as they
come; after that only the last ``tail`` bytes are (in memory), and when the run ends the
log says how many bytes were dropped, then the tail.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections import deque
from pathlib import Path
from typing import Any

from suanli_agent.client import AgentClient, AgentClientError, ApiError, Backoff

DEFAULT_CAP = 64 * 1024 * 1024
SHIP_INTERVAL_S = 1.0
CHUNK_BYTES = 512 * 1024
MAX_LINE_BYTES = 64 * 1024
STREAM_MARKS = {"stdout": b"O ", "stderr": b"E "}
NOTE_RESERVE = 200  # room kept for the dropped-bytes note, within the cap
GIVE_UP_CODES = frozenset({"not_found", "log_closed", "log_cap_exceeded"})


class LogSpool:
    """One run's captured log: ``<dir>/log-<id>.bytes`` and its state ``log-<id>.json``
    (how many bytes the server has, how many were dropped, whether the run ended)."""

    def __init__(self, directory: Path, assignment_id: int, *, cap: int = DEFAULT_CAP) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"log-{assignment_id}.bytes"
        self.state_path = directory / f"log-{assignment_id}.json"
        self.cap = cap
        self.tail_budget = max(1024, min(cap // 8, 4 * 1024 * 1024))
        self._lock = threading.Lock()
        state = self._read_state()
        self.sent = int(state.get("sent", 0))
        self.dropped = int(state.get("dropped", 0))
        self.closed = bool(state.get("closed", False))
        self._file = open(self.path, "ab")  # noqa: SIM115  lives with the spool
        self.size = self._file.tell()
        self._tail: deque[bytes] = deque()
        self._tail_bytes = 0

    def _read_state(self) -> dict[str, Any]:
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def _save_state(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"sent": self.sent, "dropped": self.dropped,
                                   "closed": self.closed}))
        os.replace(tmp, self.state_path)

    @property
    def head_budget(self) -> int:
        return self.cap - self.tail_budget - NOTE_RESERVE

    def write_line(self, stream: str, line: str) -> None:
        """One line the run printed (without its newline)."""
        raw = line.encode("utf-8", errors="replace")
        mark = STREAM_MARKS.get(stream, b"O ")
        pieces = [raw[i:i + MAX_LINE_BYTES] for i in range(0, len(raw), MAX_LINE_BYTES)] or [b""]
        with self._lock:
            if self.closed:
                return
            for piece in pieces:
                record = mark + piece + b"\n"
                if self._tail_bytes == 0 and self.size + len(record) <= self.head_budget:
                    # Written through at once: what was read survives a kill of the agent.
                    self._file.write(record)
                    self._file.flush()
                    self.size += len(record)
                    continue
                self._tail.append(record)
                self._tail_bytes += len(record)
                while self._tail_bytes > self.tail_budget and self._tail:
                    gone = self._tail.popleft()
                    self._tail_bytes -= len(gone)
                    self.dropped += len(gone)

    def close(self) -> None:
        """The run ended: the dropped-bytes note and the tail go to the spool."""
        with self._lock:
            if self.closed:
                return
            if self.dropped:
                note = (f"S [suanli] {self.dropped} bytes of output dropped here: the log is "
                        f"capped at {self.cap} bytes, its last part follows\n").encode()
                self._file.write(note)
                self.size += len(note)
            for record in self._tail:
                self._file.write(record)
                self.size += len(record)
            self._tail.clear()
            self._tail_bytes = 0
            self._file.flush()
            self.closed = True
            self._save_state()

    def pending(self) -> int:
        with self._lock:
            return self.size - self.sent

    def read_from(self, offset: int, limit: int) -> bytes:
        with open(self.path, "rb") as handle:
            handle.seek(offset)
            return handle.read(limit)

    def mark_sent(self, offset: int) -> None:
        with self._lock:
            self.sent = offset
            self._save_state()

    def discard(self) -> None:
        with self._lock:
            self._file.close()
            self.path.unlink(missing_ok=True)
            self.state_path.unlink(missing_ok=True)


class LogShipper:
    """Ships a spool's new bytes at least every ``SHIP_INTERVAL_S`` while the run goes,
    and everything at its end (``drain``)."""

    def __init__(self, *, spool: LogSpool, client: AgentClient, assignment_id: int,
                 log: logging.LoggerAdapter[logging.Logger] | logging.Logger,
                 interval_s: float = SHIP_INTERVAL_S) -> None:
        self.spool = spool
        self.client = client
        self.assignment_id = assignment_id
        self.log = log
        self.interval_s = interval_s
        self.gave_up = False
        self._stop = threading.Event()
        self._ship_lock = threading.Lock()
        self._unreachable = False
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"logs-{assignment_id}")

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.ship_once()

    def ship_once(self) -> bool:
        """Send what the server does not have yet; True when it has everything."""
        with self._ship_lock:
            while not self.gave_up:
                offset = self.spool.sent
                data = self.spool.read_from(offset, CHUNK_BYTES)
                if not data:
                    return True
                try:
                    answer = self.client.log_chunk(self.assignment_id, offset=offset, data=data)
                except ApiError as error:
                    if error.code == "log_offset_gap" and isinstance(
                            error.fields.get("offset"), int):
                        self.spool.mark_sent(min(int(error.fields["offset"]), self.spool.size))
                        continue
                    if error.code in GIVE_UP_CODES or not error.retryable:
                        self.log.warning("log of assignment %s refused (%s); not sending more",
                                         self.assignment_id, error)
                        self.gave_up = True
                        return True
                    self._note_unreachable(error)
                    return False
                except AgentClientError as error:
                    self._note_unreachable(error)
                    return False
                if self._unreachable:
                    self.log.info("log of assignment %s flowing again", self.assignment_id)
                    self._unreachable = False
                server_offset = int(answer.get("offset", offset + len(data)))
                cap = answer.get("cap")
                if isinstance(cap, int) and 0 < cap < self.spool.cap:
                    self.spool.cap = cap
                self.spool.mark_sent(min(server_offset, self.spool.size))
            return True

    def _note_unreachable(self, error: Exception) -> None:
        if not self._unreachable:
            self._unreachable = True
            self.log.warning("log of assignment %s not delivered (%s); kept on disk, will "
                             "send it later", self.assignment_id, error)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def drain(self, *, stop: threading.Event, backoff_base_s: float = 1.0,
              backoff_cap_s: float = 30.0) -> bool:
        """Ship everything, retrying with backoff; False if ``stop`` came first."""
        self.stop()
        backoff = Backoff(base_s=backoff_base_s, cap_s=backoff_cap_s)
        while not stop.is_set():
            if self.ship_once():
                return True
            stop.wait(backoff.next_delay())
        return False


def spool_directory(state_directory: Path | None) -> Path:
    if state_directory is not None:
        return state_directory / "logs"
    return Path(tempfile.gettempdir()) / f"suanli-agent-{os.getuid()}" / "logs"
