"""The code's shape: small modules (the import contracts are run by scripts/test.sh)."""

import ast
from pathlib import Path

SRC = Path(__file__).parent.parent / "src" / "cnnlab"
MAX_LINES = 400


def test_no_source_file_is_over_400_lines():
    sizes = {p.relative_to(SRC): len(p.read_text().splitlines()) for p in SRC.rglob("*.py")}
    assert sizes  # the tree was found
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}


def test_no_two_modules_share_a_name():
    names = [p.name for p in SRC.rglob("*.py") if p.name != "__init__.py"]
    assert sorted({n for n in names if names.count(n) > 1}) == []


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Every cnnlab module ``path`` imports, at any depth: deferred (inside functions) and
    type-only (under TYPE_CHECKING) imports included; a package's own parent excluded."""
    me = _module(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            names = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != me and not me.startswith(name + "."):
                found.add(name)
    return found


def test_no_import_circles_deferred_and_type_only_imports_included():
    paths = {_module(p): p for p in SRC.rglob("*.py")}
    graph = {m: _imports(p, set(paths)) for m, p in paths.items()}
    reaches: dict[str, set[str]] = {}

    def reach(m: str) -> set[str]:
        if m not in reaches:
            reaches[m] = set()
            todo = list(graph[m])
            while todo:
                n = todo.pop()
                if n not in reaches[m]:
                    reaches[m].add(n)
                    todo += graph[n]
        return reaches[m]

    circles = sorted(m for m in graph if m in reach(m))
    assert circles == []
