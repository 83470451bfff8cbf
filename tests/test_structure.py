"""The code's shape: small modules (the import contracts are run by scripts/test.sh)."""

from pathlib import Path

SRC = Path(__file__).parent.parent / "src" / "cnnlab"
MAX_LINES = 400


def test_no_source_file_is_over_400_lines():
    sizes = {p.relative_to(SRC): len(p.read_text().splitlines()) for p in SRC.rglob("*.py")}
    assert sizes  # the tree was found
    assert {p: n for p, n in sizes.items() if n > MAX_LINES} == {}
