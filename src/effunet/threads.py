"""Work spread over a job's threads with results in order (`in_order`): reading and scoring evaluated
images, and the pooled AUCs' value ranges. NumPy's sorts and Pillow's resize release the GIL, so
the items run side by side; the results come back in the items' order, so nothing downstream
depends on the number of threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor


def in_order(function, items: list, threads: int | None):
    """`function` over `items`, yielded in order, run on up to `threads` threads (None or 1: in this one)."""
    if not threads or threads <= 1 or len(items) <= 1:
        yield from map(function, items)
        return
    pool = ThreadPoolExecutor(max_workers=min(threads, len(items)), thread_name_prefix="effunet")
    try:
        yield from pool.map(function, items)
    finally:  # on an error, or when the caller stops, the items not started yet are not run
        pool.shutdown(wait=True, cancel_futures=True)
