"""What start-up made is frozen out of the collector's full passes (``connector.heap``).

In a child process: freezing the test runner's own heap would keep every later test's
garbage that points into it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent(
    """
    import gc, sys, weakref
    from connector.app import create_app
    from connector.heap import settle

    app = create_app({"TESTING": True, "database_url": sys.argv[1], "auto_migrate": True})

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a  # garbage only a full collection finds
    gone = weakref.ref(a)
    del a, b
    frozen = settle()
    print(frozen, gc.get_freeze_count(), len(gc.get_objects()), gone() is None)
    """
)


def test_settle_freezes_the_built_app_after_collecting_its_garbage(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, f"sqlite:///{tmp_path / 'heap.db'}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    frozen, counted, left, collected = done.stdout.split()
    assert int(frozen) == int(counted) > 50_000  # the app and its imports
    assert int(left) < 1_000  # what a full collection still walks
    assert collected == "True"  # the cycle was collected, not frozen for good
