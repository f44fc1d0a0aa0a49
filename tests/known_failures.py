"""Tests that broke when this stop merged eight branches at once, each named with what
broke it. They are skipped (several fail in their fixtures, where xfail does not reach)
and reported as such until the next session mends them: the closing note of this stop
lists them too. Nothing else may join this list; the list is emptied, not grown."""

KNOWN_FAILURES: dict[str, str] = {}
