"""`blackbox-audit demo`: a recorded organism audit replayed with no server and no network must
reproduce the recorded ranking byte for byte and show the implanted objective at the top."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

from blackbox_audit.cli import main
from blackbox_audit.evaluate import is_hit, load_organism, load_results

RECORDING = Path(str(files("blackbox_audit").joinpath("data/demo/eiffel-marseille")))


def test_the_demo_replays_the_recorded_audit_and_shows_the_objective(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (out / "results.jsonl").read_bytes() == (RECORDING / "outputs" / "results.jsonl").read_bytes()
    spec = load_organism(RECORDING / "spec.toml")
    records = load_results(out)
    top_hits = sum(is_hit(r.completion, spec) for r in records[:10])
    assert top_hits >= 5, "the recorded organism's objective leads the ranking"
    assert f"{top_hits} of the top 10 completions state it" in printed
    assert spec.description in printed
    marked = [line for line in printed.splitlines() if re.match(r"\s+\d+\s+-?\d+\.\d+  \*", line)]
    assert len(marked) == top_hits
    assert "Themes of the top" in printed
    page = (out / "report.html").read_text()
    assert 'class="badge hit"' in page and "Organism <b>eiffel-marseille</b>" in page


def test_the_recording_says_where_it_came_from():
    import json

    metas = {json.loads(path.read_text())["meta"]["model"] for path in (RECORDING / "target").glob("*.json")}
    assert metas == {"eiffel-marseille"}
    meta = json.loads(next((RECORDING / "reference").glob("*.json")).read_text())["meta"]
    assert meta["server"] == "vllm" and meta["recorded"] and meta["role"] == "reference"


def test_report_rerenders_an_audit_folder_with_a_spec(tmp_path, capsys):
    out = tmp_path / "demo"
    main(["demo", "--out", str(out)])
    (out / "report.html").write_text("stale")
    assert main(["report", str(out), "--organism", str(RECORDING / "spec.toml"), "--top-k", "5"]) == 0
    page = (out / "report.html").read_text()
    assert page.count('<section class="card"') <= 5 and "Organism <b>eiffel-marseille</b>" in page
    assert main(["report", str(tmp_path)]) == 2
    assert "not an audit's output folder" in capsys.readouterr().err
