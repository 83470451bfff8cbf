"""Settings side by side: what tells one variant (or one study's variant) from another."""

from __future__ import annotations

import hashlib
import json
from typing import Any

MISSING = "—"


def flatten(settings: dict[str, Any] | None) -> dict[str, Any]:
    """Dotted keys ("optimizer.lr"); the model as its name plus one key per argument
    ("model.batch_norm"), a model file's layers as a short hash."""
    out: dict[str, Any] = {}
    for key, value in (settings or {}).items():
        if key == "model" and isinstance(value, dict):
            if "builtin" in value:
                out["model"] = value["builtin"]
                for arg, v in sorted((value.get("args") or {}).items()):
                    out[f"model.{arg}"] = v
            else:
                text = json.dumps(value, sort_keys=True)
                out["model"] = f"layers #{hashlib.sha256(text.encode()).hexdigest()[:8]}"
        elif isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in flatten(value).items()})
        else:
            out[key] = value
    return out


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
