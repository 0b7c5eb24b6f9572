"""The TF oracle's common ground: scenarios, what a step records, and how two records compare.

A scenario is one TF1 program and its ``loaders`` port, written as a subclass of
:class:`Scenario` with two methods, ``tf(self, tf, rec)`` (graph mode, ``tf.compat.v1``) and
``lo(self, lo, rec)`` (``lo`` is the ``loaders`` package). Each method runs its steps through the
recorder ``rec``: ``rec.run(x)`` builds and runs one step (``x`` a callable, or on the TF side a
fetch) and records its value, dtype and shape or the class of the exception it raised;
``rec.blocks(x)`` records whether the step is still waiting after a short time;
``rec.put(value)`` records a value computed in Python. The two records must be equal.

This module is imported by two interpreters, the TF one (no torch) and the test one (no TF),
so it imports neither. Scenario modules (``scenarios/*.py``) follow the same rule at import time.
"""
from __future__ import annotations

import importlib
import math
import pkgutil
import threading
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

HERE = Path(__file__).resolve().parent

#: How long ``rec.blocks`` waits before it calls a step blocked.
BLOCK_SECS = 0.3
#: The default wall-clock limit of one scenario (either side); past it the scenario is a hang.
TIME_LIMIT_SECS = 20.0

_REGISTRY: Dict[str, "Scenario"] = {}


class Scenario:
    """One TF1 program (``tf``) and its port (``lo``), named after the TF test it comes from.

    Subclass attributes: ``source`` (the TF test file's stem, e.g. ``"fifo_queue_test"``; the
    scenario module's name plus ``_test`` by default), ``cases`` (a list: one scenario per case,
    each method then receives ``case``), ``differs`` (the README's reason, when the two are known
    to differ), ``time_limit`` (seconds).
    """

    source: str = ""
    cases: Optional[List[Any]] = None
    differs: Optional[str] = None
    time_limit: float = TIME_LIMIT_SECS

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        source = cls.source or cls.__module__.rsplit(".", 1)[-1] + "_test"
        if cls.cases is None:
            _register(f"{source}.{cls.__name__}", cls, None)
        else:
            for index, case in enumerate(cls.cases):
                _register(f"{source}.{cls.__name__}[{index}]", cls, case)

    def __init__(self, name: str, case: Any) -> None:
        self.name = name
        self.case = case

    def tf(self, tf: Any, rec: "Recorder") -> None:  # pragma: no cover - always overridden
        raise NotImplementedError

    def lo(self, lo: Any, rec: "Recorder") -> None:  # pragma: no cover - always overridden
        raise NotImplementedError


def _register(name: str, cls: type, case: Any) -> None:
    if name in _REGISTRY:
        raise ValueError(f"two scenarios are named {name}")
    _REGISTRY[name] = cls(name, case)


def scenarios() -> Dict[str, Scenario]:
    """Every scenario of ``scenarios/*.py``, by name (modules imported on first call)."""
    if not _REGISTRY:
        for module in sorted(pkgutil.iter_modules([str(HERE / "scenarios")]), key=lambda m: m.name):
            importlib.import_module(f"scenarios.{module.name}")
    return _REGISTRY


def source_text(scenario: Scenario) -> str:
    """What a cached TF result depends on: the scenario's module, the modules scenario modules
    share (``scenarios/_*.py``) and this harness."""
    module = importlib.import_module(type(scenario).__module__)
    shared = sorted((HERE / "scenarios").glob("_*.py"))
    return "".join(path.read_text() for path in [Path(module.__file__), *shared, Path(__file__)])


# ---------------------------------------------------------------------------- recording


class Recorder:
    """Collects the steps of one side of a scenario; the sides override ``_execute``/``_blocked``."""

    def __init__(self) -> None:
        self.steps: List[dict] = []

    def run(self, x: Any, unordered: bool = False) -> Any:
        """Build and run one step; record its value (rows sorted when ``unordered``) or its error."""
        try:
            value = self._execute(x)
        except Exception as error:  # the step's outcome is what is compared
            self.steps.append(error_entry(error))
            return None
        self.steps.append({"value": normalize(value, unordered)})
        return value

    def blocks(self, x: Any) -> None:
        """Record whether the step ``x`` is still waiting after BLOCK_SECS (else its outcome)."""
        try:
            value, blocked = self._blocked(x)
        except Exception as error:
            self.steps.append(error_entry(error))
            return
        self.steps.append({"blocks": True} if blocked else {"value": normalize(value, False)})

    def put(self, value: Any, unordered: bool = False) -> None:
        """Record a value computed by the program itself."""
        self.steps.append({"value": normalize(value, unordered)})

    def _execute(self, x: Any) -> Any:
        return x() if callable(x) else x

    def _blocked(self, x: Any) -> tuple:
        raise NotImplementedError


def error_entry(error: BaseException) -> dict:
    """A step that raised: the class names up its MRO (compared) and the message (shown)."""
    names = [cls.__name__ for cls in type(error).__mro__ if cls not in (object, BaseException)]
    return {"error": names, "message": f"{type(error).__name__}: {_message(error)}"[:300]}


def _message(error: BaseException) -> str:
    """The error's own words: TF's graph-execution preamble and node traceback left out."""
    text = str(error)
    if "Detected at node" not in text:
        return text
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith((" ", "\t"))]
    return " ".join(line for line in lines if not line.startswith(("Graph execution error", "Detected at node")))


def execute(scenario: Scenario, side: str, module: Any, rec: Recorder, setup: Callable[[], Any]) -> dict:
    """Run one side of ``scenario`` in a daemon thread within its time limit; return its record."""
    outcome: dict = {}

    def body() -> None:
        try:
            with setup():
                getattr(scenario, side)(module, rec)
        except Exception as error:  # an error outside any step ends the program: compared too
            outcome["uncaught"] = error_entry(error)
            outcome["uncaught"]["trace"] = traceback.format_exc()[-2000:]

    thread = threading.Thread(target=body, name=f"oracle-{scenario.name}", daemon=True)
    thread.start()
    thread.join(scenario.time_limit)
    record = {"steps": list(rec.steps)}
    if thread.is_alive():
        record["hang"] = f"still running after {scenario.time_limit} s"
    elif "uncaught" in outcome:
        record["uncaught"] = outcome["uncaught"]
    return record


# ---------------------------------------------------------------------------- values


def normalize(value: Any, unordered: bool = False) -> Any:
    """A JSON-able description of a step's value, the same whichever side produced it.

    Tensors and arrays become ``{"t": dtype, "s": shape, "v": flat values}`` (strings as hex);
    ``bytes`` is a scalar string tensor and a (nested, rectangular) list of ``bytes`` a string
    tensor, because TF returns object arrays where ``loaders`` returns lists of bytes; Python
    scalars are ``{"py": value}``; lists, tuples and dicts keep their structure.
    """
    described = _describe(value)
    return _sort_rows(described) if unordered else described


def _describe(value: Any) -> Any:
    if value is None:
        return None
    if _is_torch(value):
        import torch  # only ever reached in the interpreter that produced a tensor

        if value.dtype == torch.bfloat16:
            value = value.float()
        value = value.detach().cpu().numpy()
    if hasattr(value, "dtype") and hasattr(value, "shape") and hasattr(value, "tolist"):  # numpy
        return _tensor(str(value.dtype), list(value.shape), value.reshape(-1).tolist())
    if isinstance(value, (bytes, bytearray)):
        return _tensor("object", [], [bytes(value)])
    if isinstance(value, str):
        return {"str": value}
    if isinstance(value, bool) or isinstance(value, (int, float)):
        return {"py": _float(value) if isinstance(value, float) else value}
    if isinstance(value, dict):
        return {"dict": {str(key): _describe(item) for key, item in sorted(value.items(), key=lambda kv: str(kv[0]))}}
    if isinstance(value, (list, tuple)):
        shape = _bytes_shape(value)
        if shape is not None:
            return _tensor("object", shape, list(_flatten(value)))
        return [_describe(item) for item in value]
    return {"repr": repr(value)[:200]}


def _is_torch(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "numpy")


def _tensor(dtype: str, shape: list, flat: list) -> dict:
    if dtype in ("object", "bytes") or dtype.startswith("|S"):
        return {"t": "string", "s": shape, "v": [bytes(item).hex() for item in flat]}
    return {"t": dtype, "s": shape, "v": [_float(item) if isinstance(item, float) else item for item in flat]}


def _float(x: float) -> Any:
    """Floats compare bit for bit; NaN and the infinities travel as text (JSON has none)."""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def _bytes_shape(value: Any) -> Optional[list]:
    """The shape of a non-empty rectangular nest of lists of bytes, else None."""
    if isinstance(value, (bytes, bytearray)):
        return []
    if not isinstance(value, (list, tuple)) or not value:
        return None
    inner = [_bytes_shape(item) for item in value]
    if any(shape is None for shape in inner) or any(shape != inner[0] for shape in inner):
        return None
    return [len(value)] + inner[0]


def _flatten(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        yield value
    else:
        for item in value:
            yield from _flatten(item)


def _sort_rows(described: Any) -> Any:
    """Order-free results: rows along dim 0 sorted (across components kept together)."""
    if isinstance(described, dict) and "t" in described:
        return _rejoin([described], _rows([described]))[0]
    if isinstance(described, list) and described and all(isinstance(d, dict) and "t" in d for d in described):
        return _rejoin(described, _rows(described))
    if isinstance(described, list):
        return sorted(described, key=repr)
    return described


def _rows(tensors: List[dict]) -> list:
    rows = []
    for tensor in tensors:
        if not tensor["s"]:
            return [tuple([t["v"]]) for t in tensors]
        count = tensor["s"][0]
        width = len(tensor["v"]) // count if count else 0
        rows.append([tensor["v"][i * width:(i + 1) * width] for i in range(count)])
    return sorted(zip(*rows), key=repr)


def _rejoin(tensors: List[dict], rows: list) -> List[dict]:
    if tensors and not tensors[0]["s"]:
        return tensors
    return [dict(t, v=[x for row in rows for x in row[i]]) for i, t in enumerate(tensors)]


# ---------------------------------------------------------------------------- comparing


def same(theirs: Any, ours: Any) -> bool:
    """Whether two described values agree: equal, a Python scalar matching a 0-d tensor."""
    if isinstance(theirs, dict) and isinstance(ours, dict):
        if "py" in ours and "t" in theirs:
            return theirs["s"] == [] and _scalar_equal(theirs, ours["py"])
        if "py" in theirs and "t" in ours:
            return ours["s"] == [] and _scalar_equal(ours, theirs["py"])
        if "dict" in theirs and "dict" in ours:
            a, b = theirs["dict"], ours["dict"]
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        return theirs == ours
    if isinstance(theirs, list) and isinstance(ours, list):
        return len(theirs) == len(ours) and all(same(a, b) for a, b in zip(theirs, ours))
    return theirs == ours


def _scalar_equal(tensor: dict, value: Any) -> bool:
    kind = "bool" if isinstance(value, bool) else "float" if isinstance(value, (float, str)) else "int"
    dtype_kind = "bool" if tensor["t"] == "bool" else "float" if tensor["t"].startswith("float") else "int"
    return kind == dtype_kind and tensor["v"] == [value]


def _step_agrees(theirs: dict, ours: dict) -> bool:
    if "error" in theirs or "error" in ours:
        return "error" in theirs and "error" in ours and theirs["error"][0] in ours["error"]
    if "blocks" in theirs or "blocks" in ours:
        return theirs.get("blocks") == ours.get("blocks")
    return same(theirs["value"], ours["value"])


def differences(theirs: dict, ours: dict) -> List[str]:
    """What differs between TF's record and ours, one line each (empty when they agree).

    An error agrees when our exception is TF's class or a subclass of it (``except tf.errors.X``
    ports to ``except loaders.X``).
    """
    lines = []
    for key in ("hang",):
        if key in theirs or key in ours:
            lines.append(f"{key}: tf={theirs.get(key)} loaders={ours.get(key)}")
    a, b = theirs["steps"], ours["steps"]
    for index in range(max(len(a), len(b))):
        left = a[index] if index < len(a) else None
        right = b[index] if index < len(b) else None
        if left is None or right is None or not _step_agrees(left, right):
            lines.append(f"step {index}: tf={_show(left)} loaders={_show(right)}")
    if "uncaught" in theirs or "uncaught" in ours:
        left, right = theirs.get("uncaught"), ours.get("uncaught")
        if left is None or right is None or left["error"][0] not in right["error"]:
            lines.append(f"uncaught: tf={_show(left)} loaders={_show(right)}")
            if right is not None:
                lines.append(right.get("trace", ""))
    return lines


def _show(entry: Optional[dict]) -> str:
    if entry is None:
        return "(no step)"
    if "error" in entry:
        return entry["message"]
    text = repr(entry.get("value", entry))
    return text if len(text) < 400 else text[:400] + "..."
