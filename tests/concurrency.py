"""Running test code in real threads, each with its own database connection."""

import threading
from collections.abc import Callable

from django.db import connections


def run_threads(n: int, target: Callable[[int], object]) -> list[object]:
    """Start n threads behind a barrier so they really overlap; collect what each returns
    (or raises), and close each thread's connections."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def body(i: int) -> None:
        try:
            barrier.wait()
            results[i] = target(i)
        except BaseException as exc:  # collected and asserted on by the test
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results
