"""JSON-ready numbers for the results classes' ``to_dict()``: NaN and infinities become ``None`` (JSON null)."""

from __future__ import annotations

import math


def json_float(value: float | None) -> float | None:
    """``float(value)``, or ``None`` for ``None``, NaN and infinities."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
