"""AdaMax conformance suite. `conformance.record` records a user's torch training loop into a trace that
`python -m conformance replay` feeds to every AdaMax implementation (docs/traces.md)."""
from __future__ import annotations

from typing import Any


def record(optimizer: Any, path: Any, model: Any = None) -> Any:
    """Record a torch.optim.Adamax loop into a trace folder: conformance.traces.record.record (imported
    only when called: importing the suite imports no framework)."""
    from conformance.traces.record import record as _record

    return _record(optimizer, path, model=model)
