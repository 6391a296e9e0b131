"""Worker processes that end with the process that started them.

A pool's workers outlive a parent killed with SIGKILL (nothing runs in the parent to stop
them): they would sleep, or write on alone, re-parented to init. `watch_parent` is a pool
initializer that ends the worker as soon as its parent is gone.
"""

from __future__ import annotations

import os
import threading
import time


def watch_parent(parent_pid: int) -> None:
    """Pool initializer: a daemon thread ends this worker when `parent_pid` stops being its parent."""
    threading.Thread(target=exit_with_parent, args=(parent_pid,), daemon=True).start()


def exit_with_parent(parent_pid: int) -> None:
    """Return never: poll the parent, and end the process (no cleanup: the parent's kill was not
    clean either) once it is gone."""
    while os.getppid() == parent_pid:
        time.sleep(0.2)
    os._exit(1)
