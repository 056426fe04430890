"""Leaderboard page and plots from fixture result files; the page checked in a real browser."""

import json
import re
import shutil
import subprocess

import pytest

from harness.schema import Metric, RunRecord
from tests.test_compare import write_run

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    write_run(root, "base", {"tiny_passkey": [100, 0, 0, 100], "tiny_kv": [0, 0, 0, 0]})
    write_run(root, "longact", {"tiny_passkey": [100, 100, 0, 100], "tiny_kv": [100, 0, 0, 0]})
    write_run(root, "random", {"tiny_passkey": [0, 0, 0, 0], "tiny_kv": [0, 0, 0, 0]})
    return root


def test_page_markdown_and_provenance(results, tmp_path):
    from harness.leaderboard import write_leaderboard

    out = write_leaderboard(results, tmp_path / "site")
    md = (out / "leaderboard.md").read_text()
    assert md.splitlines()[0] == "| run | tiny_kv | tiny_passkey | tiny avg |"
    assert "| longact (0longact) | 25.0 | 75.0 | 50.0 |" in md
    page = (out / "index.html").read_text()
    assert page.count('<tr class="run"') == 3 and "weights_sha256" in page
    assert "http://" not in page and "https://" not in page          # self-contained


def test_plots_are_png(results):
    from harness import plots
    from harness.compare import load

    runs = [load(p) for p in sorted(results.iterdir())]
    assert plots.ruler_vs_length(runs) is None                       # no RULER results, no plot
    rec = runs[0].record
    rec.group_breakdown["ruler"] = {"length": {"4096": {"score": Metric(80.0, 1.0, 10)},
                                               "8192": {"score": Metric(70.0, 1.0, 10)}}}
    png = plots.ruler_vs_length(runs)
    assert png.startswith(PNG) and len(png) > 2000
    curves = plots.training_curves([{"step": i, "reward": i / 10, "masked_rows_changed": 0} for i in range(20)],
                                   ["reward", "masked_rows_changed", "absent"])
    assert curves.startswith(PNG)
    assert plots.training_curves([{"step": 0}], ["reward"]) is None


def _browser():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.skipif(_browser() is None, reason="no headless Chromium on this machine (.ci/run installs the "
                                               "distribution's chromium package where apt can reach a mirror)")
def test_page_renders_and_sorts_in_a_real_browser(results, tmp_path):
    from harness.leaderboard import write_leaderboard

    out = write_leaderboard(results, tmp_path / "site")
    url = (out / "index.html").resolve().as_uri()

    def rendered(fragment: str) -> list[str]:
        dom = subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", url + fragment],
                             capture_output=True, text=True, timeout=120).stdout
        assert "<table id=\"board\">" in dom or "id=\"board\"" in dom, dom[:500]
        return re.findall(r'<tr class="run" id="r\d+"><td>([^<]+)</td>', dom)

    assert rendered("") == ["base (0000base)", "longact (0longact)", "random (00random)"]
    assert rendered("#sort=tiny_passkey:desc") == ["longact (0longact)", "base (0000base)", "random (00random)"]
    assert rendered("#sort=tiny_passkey:asc")[0] == "random (00random)"
