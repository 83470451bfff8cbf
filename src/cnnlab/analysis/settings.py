"""Settings side by side: what tells one variant (or one study's variant) from another."""

from __future__ import annotations

import json
from typing import Any

from cnnlab.config.identity import flatten

__all__ = ["MISSING", "describe", "differences", "flatten", "show"]

MISSING = "—"


def differences(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The keys whose values differ, as {"key", "a", "b"} (MISSING where a side lacks it)."""
    fa, fb = flatten(a), flatten(b)
    keys = list(fa) + [k for k in fb if k not in fa]
    return [
        {"key": k, "a": fa.get(k, MISSING), "b": fb.get(k, MISSING)}
        for k in keys
        if fa.get(k, MISSING) != fb.get(k, MISSING)
    ]


def show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def describe(diffs: list[dict[str, Any]], limit: int = 6) -> str:
    """Like "optimizer.lr 0.1 -> 0.01, device cpu -> cuda" (``limit`` of them, then "and N more")."""
    parts = [f"{d['key']} {show(d['a'])} -> {show(d['b'])}" for d in diffs[:limit]]
    if len(diffs) > limit:
        parts.append(f"and {len(diffs) - limit} more")
    return ", ".join(parts)
