"""What the agent remembers about each run, so a restart continues where it stopped.

Per assignment: the last usage sequence number the server answered, the cumulative usage
reported, the work time already done, and a final report not yet delivered. Kept in one
small JSON file per assignment (written atomically), or only in memory.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DONE_RETENTION_S = 24 * 3600


@dataclass
class RunRecord:
    assignment_id: int
    job_id: int
    last_seq: int = 0
    gpu_seconds: int = 0
    ai_tokens: int = 0
    elapsed_s: float = 0.0
    # {"kind": "complete"|"fail", "body": {...}} while a final report awaits delivery.
    final: dict[str, Any] | None = None
    done: bool = False
    updated_at: float = field(default_factory=time.time)


class RunStateStore:
    """Run records of one node, on disk under ``directory`` or in memory when None."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self._memory: dict[int, RunRecord] = {}
        self._lock = threading.Lock()
        if directory is not None:
            # Only the agent's user reaches what it remembers (and the runs kept below it).
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory.chmod(0o700)
            for record in self._read_all():
                self._memory[record.assignment_id] = record

    def _path(self, assignment_id: int) -> Path:
        assert self.directory is not None
        return self.directory / f"assignment-{assignment_id}.json"

    def _read_all(self) -> list[RunRecord]:
        assert self.directory is not None
        records = []
        for path in sorted(self.directory.glob("assignment-*.json")):
            try:
                records.append(RunRecord(**json.loads(path.read_text())))
            except (OSError, ValueError, TypeError):
                continue
        return records

    def get(self, assignment_id: int) -> RunRecord | None:
        with self._lock:
            record = self._memory.get(assignment_id)
            return None if record is None else RunRecord(**asdict(record))

    def all(self) -> list[RunRecord]:
        with self._lock:
            return [RunRecord(**asdict(r)) for r in self._memory.values()]

    def save(self, record: RunRecord) -> None:
        record.updated_at = time.time()
        with self._lock:
            self._memory[record.assignment_id] = RunRecord(**asdict(record))
            if self.directory is None:
                return
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w") as handle:
                json.dump(asdict(record), handle)
            os.replace(tmp, self._path(record.assignment_id))

    def delete(self, assignment_id: int) -> None:
        with self._lock:
            self._memory.pop(assignment_id, None)
            if self.directory is not None:
                self._path(assignment_id).unlink(missing_ok=True)

    def prune(self, *, older_than_s: float = DONE_RETENTION_S) -> None:
        """Forget finished runs after a while; they only guard against a stale lease."""
        cutoff = time.time() - older_than_s
        for record in self.all():
            if record.done and record.updated_at < cutoff:
                self.delete(record.assignment_id)
