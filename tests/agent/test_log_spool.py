"""The agent's log spool: lines marked with their stream, the cap keeping the tail with a
note of what was dropped, state kept across a restart."""

from __future__ import annotations

from pathlib import Path

from suanli_agent.logs import LogSpool


def test_lines_are_marked_with_their_stream_in_arrival_order(tmp_path: Path) -> None:
    spool = LogSpool(tmp_path, 7)
    spool.write_line("stdout", "hello")
    spool.write_line("stderr", "oops é")
    spool.close()
    assert spool.path.read_bytes() == "O hello\nE oops é\n".encode()


def test_past_the_cap_the_tail_is_kept_with_a_dropped_bytes_note(tmp_path: Path) -> None:
    spool = LogSpool(tmp_path, 7, cap=10_000)
    assert (spool.head_budget, spool.tail_budget) == (8_550, 1_250)
    for i in range(2000):
        spool.write_line("stdout", f"{i:08d}")  # 11 bytes a line
    spool.close()
    data = spool.path.read_bytes()
    lines = data.decode().splitlines()
    kept = 8_550 // 11  # 777 lines of 11 bytes
    assert lines[:kept] == [f"O {i:08d}" for i in range(kept)]
    tail_lines = 1_250 // 11  # 113 whole lines fit the tail
    dropped = (2000 - kept - tail_lines) * 11
    assert lines[kept] == (f"S [suanli] {dropped} bytes of output dropped here: the log is "
                          "capped at 10000 bytes, its last part follows")
    assert lines[kept + 1:] == [f"O {i:08d}" for i in range(2000 - tail_lines, 2000)]
    assert len(data) <= 10_000


def test_a_restarted_spool_appends_and_remembers_what_was_sent(tmp_path: Path) -> None:
    spool = LogSpool(tmp_path, 7)
    spool.write_line("stdout", "one")
    spool.mark_sent(6)
    again = LogSpool(tmp_path, 7)
    again.write_line("stderr", "two")
    assert (again.sent, again.size) == (6, 12)
    assert again.read_from(6, 100) == b"E two\n"
    again.discard()
    assert not again.path.exists() and not again.state_path.exists()
