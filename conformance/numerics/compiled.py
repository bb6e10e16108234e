"""numba, when installed: compiles the per-element hot loops (comparing two tensors, stepping an oracle).

At a million parameters a NumPy expression costs one pass over memory per operation, and the comparator
and the float64 oracles are a few dozen such passes per step, several times the frameworks' own step
(measured by `python -m conformance bench`). A compiled loop does each in one pass with no temporaries, and,
written without branches on the data, in SIMD lanes. The arithmetic is the same IEEE float64 (no
fastmath except where a loop's result cannot depend on it, no FMA contraction): results are
bit-identical to the NumPy evaluation, which tests/numerics/test_compare.py and tests/numerics/test_oracles.py check.

Compiled code is cached in conformance/numerics/__pycache__ (*.nbi, *.nbc), keyed by the source file of the
function: after changing `jit`'s options below, delete those files once.

Without numba (e.g. on a GPU machine where only the frameworks are installed), `AVAILABLE` is False and
callers use their NumPy paths: same numbers, slower on large tensors.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:
    import numba
except ImportError:  # optional accelerator: NumPy paths give the same numbers
    numba = None

AVAILABLE = numba is not None


def jit(fn: Callable[..., Any] | None = None, *, reassociate: bool = False, inline: bool = False) -> Any:
    """numba.njit with an on-disk cache (compiled once per machine, reused by every process and xdist
    worker), without the GIL (a loop never calls back into Python) and with NumPy's error model (x/0
    gives inf or NaN as in NumPy; numba's default would raise ZeroDivisionError); identity without numba.

    `reassociate` lets the compiler reorder a floating-point reduction into SIMD lanes: only for
    loops whose result does not depend on the order (a sum of zeros and NaNs). `inline`: a per-element
    helper inlined into the loops that call it (a call per element keeps a loop scalar)."""
    if fn is None:
        return lambda f: jit(f, reassociate=reassociate, inline=inline)
    if numba is None:
        return fn
    options: dict[str, Any] = {"fastmath": {"reassoc"}} if reassociate else {}
    if inline:
        options["inline"] = "always"
    return numba.njit(cache=True, nogil=True, error_model="numpy", **options)(fn)


if numba is not None:
    from llvmlite import ir
    from numba.core import types
    from numba.extending import intrinsic

    def _bitcast(float_type: Any, int_type: Any, width: int) -> Any:
        @intrinsic
        def bits(typingctx, value):  # pragma: no cover - compiled
            if value != float_type:
                return None

            def codegen(context, builder, signature, args):
                return builder.bitcast(args[0], ir.IntType(width))
            return int_type(float_type), codegen
        return bits

    # A float's bit pattern as the hardware holds it (one register move, so loops using it stay SIMD).
    # Non-negative floats' patterns order like their values: integer max reductions, which compilers
    # vectorise, give exact float maxima.
    float32_bits = _bitcast(types.float32, types.int32, 32)
    float64_bits = _bitcast(types.float64, types.int64, 64)
