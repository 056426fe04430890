"""The README and docs/: links that resolve, the commands CI runs, and measured figures that come
from bench/figures.json (written by the bench scripts) rather than from retyped prose."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Written by someone else, linked before it exists.
ALLOWED_MISSING = {ROOT / "results" / "reference" / "README.md"}


def test_every_relative_link_in_readme_and_docs_resolves():
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (doc.parent / target.split("#")[0]).resolve()
            if not path.exists() and path not in ALLOWED_MISSING:
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert broken == []


def test_readme_names_the_commands_ci_and_the_makefile_run():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip() and not line.startswith("#")]
    makefile = (ROOT / "Makefile").read_text()
    assert ci[-1] == "make test"  # CI ends with the README's test command
    for target in ("demo", "test"):
        assert f"make {target}" in readme
        assert re.search(rf"^{target}:", makefile, re.M)


def test_readme_and_docs_state_no_measured_timings():
    """Timings go stale: they live in bench/figures.json and the generated docs/figures.md."""
    timing = re.compile(r"\b\d+(?:[.,]\d+)?\s?(?:ms|s|sec|seconds|min|minutes|h|hours|tokens/s|req/s)\b(?!\w)")
    found = [f"{doc.relative_to(ROOT)}: {m.group(0)!r} in {line.strip()[:90]!r}"
             for doc in DOCS if doc.name != "figures.md"
             for line in doc.read_text(encoding="utf-8").splitlines()
             for m in timing.finditer(line)]
    assert found == []


def test_record_figure_merges_entries(tmp_path):
    from bench.figures import record_figure

    path = tmp_path / "figures.json"
    record_figure("compare.bootstrap_s", 0.5, "s", "first", path=path)
    record_figure("compare.sign_flip_s", 0.01, "s", path=path)
    record_figure("compare.bootstrap_s", 0.25, "s", "second", path=path)
    figures = json.loads(path.read_text())
    assert sorted(figures) == ["compare.bootstrap_s", "compare.sign_flip_s"]
    entry = figures["compare.bootstrap_s"]
    assert (entry["value"], entry["unit"], entry["note"]) == (0.25, "s", "second")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", entry["date"])
    assert len(entry["load"]) == 3 and entry["cpus"] >= 1 and "commit" in entry
    assert figures["compare.sign_flip_s"]["value"] == 0.01


def test_page_lists_every_catalog_figure_and_says_which_are_not_measured_yet():
    from bench.figures import CATALOG, render

    page = render({"compare.bootstrap_s": {"value": 0.041, "unit": "s", "note": "n", "date": "2026-12-05 07:20 UTC",
                                           "commit": "abc1234", "dirty": True, "load": [1.2, 0.7, 0.3], "cpus": 2},
                   "make.demo_s": {"value": 368.0, "unit": "s"},
                   "someone.else": {"value": 3, "unit": "items"}})
    assert all(f"`{name}`" in page for name in CATALOG)
    assert page.count("not measured yet") == len(CATALOG) - 2
    assert "| 0.041 s | n | 2026-12-05 07:20 UTC | abc1234 (dirty) | 1.2 / 0.7 / 0.3 | 2 |" in page
    assert "| 6 min 8 s |" in page
    assert "Other figures" in page and "`someone.else`" in page


def test_figures_page_is_what_the_json_gives():
    from bench.figures import PAGE, load, render

    assert PAGE.read_text(encoding="utf-8") == render(load()), "run `python -m bench.figures`"


def test_every_recorded_figure_is_in_the_catalog():
    from bench.figures import CATALOG

    names = [n for script in sorted((ROOT / "bench").glob("*.py"))
             for n in re.findall(r"record_figure\(\s*f?\"([^\"]+)\"", script.read_text(encoding="utf-8"))]
    assert len(names) >= 20
    for name in names:
        prefix = name.split("{")[0]
        assert name in CATALOG if "{" not in name else any(c.startswith(prefix) for c in CATALOG), name
    commands = {command.split()[0] for command, _ in CATALOG.values()}
    assert all((ROOT / c).exists() for c in commands if c.startswith("bench/"))


def test_time_verb_records_a_commands_wall_time(tmp_path, monkeypatch):
    import bench.figures

    monkeypatch.setattr(bench.figures, "FIGURES", tmp_path / "figures.json")
    monkeypatch.setattr(bench.figures, "PAGE", tmp_path / "figures.md")
    assert bench.figures.main(["time", "make.test_s", "--", sys.executable, "-c", "pass"]) == 0
    entry = json.loads((tmp_path / "figures.json").read_text())["make.test_s"]
    assert entry["unit"] == "s" and 0 <= entry["value"] < 60
    assert "make.test_s" in (tmp_path / "figures.md").read_text()
    assert bench.figures.main(["time", "make.demo_s", "--", sys.executable, "-c", "raise SystemExit(3)"]) == 3
    assert "make.demo_s" not in json.loads((tmp_path / "figures.json").read_text())
    assert bench.figures.main(["--check"]) == 0
    (tmp_path / "figures.md").write_text("stale")
    assert bench.figures.main(["--check"]) == 1


@pytest.mark.parametrize("doc", ["README.md"])
def test_readme_is_short(doc):
    assert len((ROOT / doc).read_text(encoding="utf-8").splitlines()) <= 160
