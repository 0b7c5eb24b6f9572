"""Waiting on a state in tests: poll with a deadline, never sleep-then-assert."""
from __future__ import annotations

import time
from typing import Any, Callable


def until(condition: Callable[[], Any], timeout: float = 60.0, what: str = "the condition") -> Any:
    """Poll ``condition()`` until it is true (its value is returned) or ``timeout`` seconds pass (fails)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"{what} did not happen within {timeout} s")
