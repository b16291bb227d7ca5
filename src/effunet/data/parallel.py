"""Run one function per sample on several processes, logging progress a person can read."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, TypeVar

log = logging.getLogger(__name__)
Item = TypeVar("Item")
Result = TypeVar("Result")


def map_samples(function: Callable[[Item], Result], items: Iterable[Item], workers: int,
                label: str, every_s: float = 5.0) -> list[Result]:
    """`[function(item) for item in items]`, on `workers` processes, results in input order."""
    items = list(items)
    start = last = time.monotonic()
    results: list[Result] = []
    if workers <= 1 or len(items) < 2:
        iterator = map(function, items)
        executor = None
    else:
        executor = ProcessPoolExecutor(max_workers=workers)
        iterator = executor.map(function, items, chunksize=max(1, len(items) // (workers * 8)))
    try:
        for result in iterator:
            results.append(result)
            if time.monotonic() - last >= every_s:
                last = time.monotonic()
                log.info("%s: %d / %d done", label, len(results), len(items))
    finally:
        if executor is not None:
            executor.shutdown(cancel_futures=True)
    log.info("%s: %d items in %.1f s on %d worker(s)", label, len(items), time.monotonic() - start,
             max(1, workers))
    return results
