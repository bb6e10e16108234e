"""AdaMax conformance suite: torch.optim.Adamax against mindspore.nn.AdaMax and other implementations.

Two functions are meant for use outside the suite: `record` records a user's torch training loop into a
trace that `python -m conformance replay` feeds to every AdaMax implementation (docs/traces.md), and
`convert_state` (conformance/porting/adamax_state.py) converts an Adamax optimizer state from torch's
layout to MindSpore's and back. Importing the suite imports no framework.
"""
from __future__ import annotations

from typing import Any

from conformance.porting.adamax_state import convert_state

__all__ = ["convert_state", "record"]


def record(optimizer: Any, path: Any, model: Any = None) -> Any:
    """Record a torch.optim.Adamax loop into a trace folder: conformance.traces.record.record (imported
    only when called: importing the suite imports no framework)."""
    from conformance.traces.record import record as _record

    return _record(optimizer, path, model=model)
