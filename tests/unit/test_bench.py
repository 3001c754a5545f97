"""Smoke tests of the benchmark code (bench/): no vLLM needed; the client-overhead case runs
for real against the instant fake server over loopback HTTP, at a tiny size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import scoring_case
from bench.pairs import CONTEXT_WORDS, build_pairs
from bench.report import BEGIN, END, Row, render_table, write_between_markers

REPO = Path(__file__).resolve().parents[2]


def test_pairs_are_deterministic_and_shaped():
    pairs = build_pairs(256)
    assert pairs == build_pairs(256)
    assert len(pairs) == 256 and len(set(pairs)) == 256
    for context, continuation in pairs:
        assert len(context.split()) == CONTEXT_WORDS and not context[-1].isspace()
        assert continuation[0].isspace() and continuation.strip()


def test_more_pairs_than_documents_repeat_with_a_marked_context():
    pairs = build_pairs(3000)
    assert len(pairs) == 3000
    assert any(context.startswith("[1] ") for context, _ in pairs)


@pytest.mark.parametrize("variant", ["stream", "stream-server", "pipeline"])
def test_overhead_runs_against_the_fake_server(fake_server, variant, tmp_path):
    out = tmp_path / "result.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.overhead",
            "--url",
            fake_server,
            "--n",
            "40",
            "--variant",
            variant,
            "--out",
            str(out),
        ],
        cwd=REPO,
        check=True,
    )
    result = json.loads(out.read_text())
    assert result["n"] == 40 and result["scoring"]["cpu_s"] > 0 and result["peak_rss_mib"] > 0
    assert result["by_path"]["/completions"] == 3  # 40 completions in batches of 16
    if variant == "stream-server":
        assert result["http_requests"] == 3 + 3 * 40  # scoring, 2 tokenize + 1 detokenize each
    else:
        assert result["http_requests"] == 3  # the local tokenizer: scoring requests only


def test_agreement_compares_only_identical_prompts():
    a = scoring_case.Run("a", 1.0, 1, 3, per_pair=[([1, 2, 3], [-0.5, -1.0]), ([4, 5], [-2.0]), None])
    b = scoring_case.Run("b", 1.0, 1, 3, per_pair=[([1, 2, 3], [-0.5, -1.00005]), ([4, 6], [-9.0]), ([7, 8], [-1.0])])
    pairs, tokens, worst = scoring_case.agreement(a, b)
    assert (pairs, tokens) == (1, 2) and worst == pytest.approx(5e-5)


def test_table_and_markers(tmp_path):
    table = render_table([Row("1", "a|b", 1.234, 5, "x", "y", "z", "n")])
    assert "a\\|b" in table and "1.23" in table
    doc = tmp_path / "b.md"
    write_between_markers(doc, f"{BEGIN}\nfirst\n{END}\n")
    doc.write_text("intro\n" + doc.read_text() + "analysis\n")
    write_between_markers(doc, f"{BEGIN}\nsecond\n{END}\n")
    text = doc.read_text()
    assert "intro" in text and "analysis" in text and "second" in text and "first" not in text
