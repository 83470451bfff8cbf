"""The report's layout in a real Chromium: the variants table fits a 1,400 px window
whole and a 400 px phone without sideways scrolling (each variant a card).

Headless Chromium will not make a window narrower than 500 px, so the report is laid
out inside an iframe of the width under test (``srcdoc``: same origin, so the outer
page can measure it) and the measurements come back through ``--dump-dom``.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
from pathlib import Path

import pytest
from test_report import CHROMIUM
from test_report_runs import real_report, real_study  # noqa: F401 (fixtures)

PROBE = """<script>
window.addEventListener('load', () => {
  const frame = document.querySelector('iframe');
  const doc = frame.contentDocument;
  const box = doc.querySelector('table.cards').closest('.scroll');
  const rows = [...doc.querySelectorAll('table.cards')[0].querySelectorAll('tbody tr')];
  document.body.setAttribute('data-probe', JSON.stringify({
    viewport: frame.contentWindow.innerWidth,
    page: doc.documentElement.scrollWidth,
    table: [box.scrollWidth, box.clientWidth],
    rowHeights: rows.map(r => Math.round(r.getBoundingClientRect().height)),
    fontPx: parseFloat(getComputedStyle(doc.body).fontSize),
  }));
});
</script>"""


def measure(report: Path, width: int, tmp_path: Path) -> dict:
    outer = tmp_path / f"outer-{width}.html"
    outer.write_text(
        "<!DOCTYPE html><html><body style='margin:0'>"
        f'<iframe style="border:0" width="{width}" height="3000" '
        f'srcdoc="{html.escape(report.read_text(), quote=True)}"></iframe>{PROBE}</body></html>'
    )
    done = subprocess.run(
        [
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            # nothing but the file: no update checks, sync or first-run traffic
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={width + 100},1200",
            "--dump-dom", outer.as_uri(),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'data-probe="([^"]*)"', done.stdout)
    assert found, done.stdout[-2000:]
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
@pytest.mark.slow
def test_the_variants_table_fits_1400_px_whole_and_400_px_as_cards(real_report, tmp_path):  # noqa: F811
    wide = measure(real_report[0], 1400, tmp_path)
    assert wide["viewport"] == 1400
    assert wide["table"][0] <= wide["table"][1], wide  # no sideways scrolling
    assert wide["page"] <= 1400
    assert max(wide["rowHeights"]) < 60  # one line a variant: a table, not cards

    phone = measure(real_report[0], 400, tmp_path)
    assert phone["viewport"] == 400
    assert phone["page"] <= 400, phone  # nothing sticks out of the page
    assert phone["table"][0] <= phone["table"][1], phone
    assert min(phone["rowHeights"]) > 150  # each variant a card of label: value lines
    assert phone["fontPx"] >= 14  # readable without zooming
