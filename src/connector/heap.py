"""A serving process's start-up heap, kept out of the garbage collector's full passes."""

from __future__ import annotations

import gc


def settle() -> int:
    """Freeze what start-up made (``gc.freeze``); returns how many objects that is.

    Call once per process, after the app is built and before it works. What start-up made,
    the imported modules above all (msgraph-sdk's generated request builders and models, about
    180,000 objects with the rest of a built app), lives as long as the process; yet each full
    collection walked all of it. A first round of 20 mailboxes × 200 meetings set off four
    full collections of about 0.12 s each: 0.46 s of its 3.6 s. Frozen, they cost 0.016 s
    together (``docs/performance.md``). Garbage left in the frozen heap is never collected, so
    it is collected first; a process that builds apps over and over (the tests) should not call
    this."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
