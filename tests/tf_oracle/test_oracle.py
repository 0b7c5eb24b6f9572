"""TensorFlow is the referee: every scenario's TF1 program and its ``loaders`` port must record the same.

The TF side runs in its own interpreter, found by ``tf_interpreter.tf_python()``
(``LOADERS_TF_PYTHON``, else the checkout's ``.venv-tf``); without one these tests skip, saying
so. TF's records are cached per scenario in pytest's cache, keyed by the scenario module's and
the harness's source.
A scenario listed under "Differences from TensorFlow" in the README must still differ (xfail).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from tf_interpreter import MISSING, ROOT, tf_python  # noqa: E402

SCENARIOS = harness.scenarios()
_CACHE_KEY = "tf_oracle/records"


def _digest(scenario: harness.Scenario, python: str) -> str:
    return hashlib.sha256((harness.source_text(scenario) + python).encode()).hexdigest()[:20]


@pytest.fixture(scope="session")
def tf_records(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """TF's record of every selected scenario, from the cache or from one run of tf_side.py."""
    python = tf_python()
    if python is None:
        pytest.skip(MISSING)
    wanted = sorted({item.callspec.params["name"] for item in request.session.items
                     if getattr(item, "originalname", "") == "test_agrees_with_tensorflow"})
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    cached = cache.get(_CACHE_KEY, {}) if cache is not None else {}
    digests = {name: _digest(SCENARIOS[name], python) for name in wanted}
    missing = [name for name in wanted if cached.get(name, {}).get("digest") != digests[name]]
    if missing:
        folder = tmp_path_factory.mktemp("tf_oracle")
        (folder / "names").write_text("\n".join(missing))
        limit = sum(SCENARIOS[name].time_limit for name in missing) + 300
        done = subprocess.run(
            [python, str(Path(__file__).with_name("tf_side.py")), "--names", str(folder / "names"),
             "--out", str(folder / "records.json")],
            capture_output=True, text=True, timeout=limit, cwd=ROOT,
        )
        if done.returncode != 0:
            pytest.fail(f"the TensorFlow side failed ({python}):\n{done.stderr[-4000:]}")
        fresh = json.loads((folder / "records.json").read_text())["records"]
        for name in missing:
            cached[name] = {"digest": digests[name], "record": fresh[name]}
        if cache is not None:
            cache.set(_CACHE_KEY, cached)
    return {name: cached[name]["record"] for name in wanted}


class LoadersRecorder(harness.Recorder):
    """Steps are callables; ``blocks`` passes them ``timeout=`` and a DeadlineExceededError means blocked."""

    def _blocked(self, x: Any) -> tuple:
        import loaders

        try:
            return x(timeout=harness.BLOCK_SECS), False
        except loaders.DeadlineExceededError:
            return None, True


@contextlib.contextmanager
def _fresh_collection() -> Iterator[None]:
    """Each scenario starts with an empty QUEUE_RUNNERS collection, as each TF program has its own graph."""
    from loaders import queue_runner

    queue_runner._queue_runners.clear()
    try:
        yield
    finally:
        queue_runner._queue_runners.clear()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_agrees_with_tensorflow(name: str, tf_records: dict) -> None:
    import loaders

    scenario = SCENARIOS[name]
    ours = harness.execute(scenario, "lo", loaders, LoadersRecorder(), _fresh_collection)
    lines = harness.differences(tf_records[name], ours)
    if scenario.differs:
        assert lines, f"{name} now agrees with TensorFlow: drop its `differs` and its README entry"
        pytest.xfail(scenario.differs)
    assert not lines, "\n".join([f"{name} disagrees with TensorFlow:"] + lines)


def _readme_differences() -> set:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^## Differences from TensorFlow\n(.*?)(?=^## )", text, re.M | re.S)
    return set(re.findall(r"`([\w.]+_test\.\w+(?:\[\d+\])?)`", match.group(1))) if match else set()


def test_readme_lists_every_known_difference() -> None:
    differing = {name for name, scenario in SCENARIOS.items() if scenario.differs}
    listed = _readme_differences()
    assert differing <= listed, f"README's Differences from TensorFlow lacks {sorted(differing - listed)}"
    assert listed <= set(SCENARIOS), f"README names scenarios that do not exist: {sorted(listed - set(SCENARIOS))}"
    assert listed <= differing, f"README lists scenarios that agree (or lack `differs`): {sorted(listed - differing)}"


def test_readme_states_the_scenario_count() -> None:
    text = (ROOT / "README.md").read_text()
    assert f"{len(SCENARIOS)} scenarios" in text, f"README must state the count: {len(SCENARIOS)} scenarios"
