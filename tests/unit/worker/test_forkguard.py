"""A fork waits for a background thread's pass to end, and the child can use the guard at once."""

from __future__ import annotations

import os
import select
import threading

from bridge.worker.forkguard import ForkGuard


def test_a_fork_happens_between_passes_and_the_child_is_not_locked_out() -> None:
    guard = ForkGuard("a test thread")
    in_pass, events = threading.Event(), []

    def one_pass() -> None:
        with guard:
            in_pass.set()
            threading.Event().wait(0.3)  # work that must not be cut in half by a fork
            events.append("pass ended")

    thread = threading.Thread(target=one_pass)
    thread.start()
    in_pass.wait(5)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the guard must be free here, or a pool child would hang
        with guard:
            os.write(write_end, b"child took the guard")
        os._exit(0)
    events.append("forked")
    thread.join(5)
    ready, _, _ = select.select([read_end], [], [], 10)
    message = os.read(read_end, 100) if ready else b""
    os.waitpid(pid, 0)
    os.close(read_end)
    os.close(write_end)
    assert events == ["pass ended", "forked"]
    assert message == b"child took the guard"
