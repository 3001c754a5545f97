import re

import pytest

from blackbox_audit.ranking import rank
from blackbox_audit.records import CompletionResult
from blackbox_audit.report import (
    render_html,
    render_markdown,
    render_summary_table,
    results_jsonl_line,
)
from providers.records import TokenLogprob
from tests.factories import aligned

SUMMARY = {"target": "org/finetuned-7b", "reference": "org/base-7b", "framing": "raw", "records": "4"}


@pytest.fixture
def records():
    return [
        aligned("c4/1", "The cat", [(" sat", -2.0), (" down", -2.0)], [(" sat", -2.5), (" down", -2.0)]),
        aligned(
            "c4/2",
            "Fun fact",
            [(":", -0.5), (" the", -0.5), (" moon | is", -0.2), ("\ncheese", -0.1)],
            [(": the", -1.5), (" moon | is", -9.0), ("\n", -3.0), ("cheese", -12.0)],
        ),
        aligned(
            "c4/3", "<b>", [("<script>alert(1)</script>", -3.0)], [("<script>", -1.0), ("alert(1)</script>", -2.0)]
        ),
        CompletionResult(
            prefill_id="c4/4 odd id#",
            doc_id="doc/4",
            source="c4",
            framing="raw",
            prefill="Hello",
            completion=" w\ufffdrld",
            finish_reason="stop",
            alignment="unaligned",
            alignment_detail="reference offsets do not cover the completion",
            target=None,
            reference=None,
            gaps=None,
            degeneracy=0.0,
            target_tokens=(),
            reference_tokens=(),
        ),
    ]


@pytest.fixture
def ranked(records):
    return rank(records)


def test_jsonl_line_round_trips(records):
    for record in records:
        line = results_jsonl_line(record)
        assert "\n" not in line
        assert CompletionResult.model_validate_json(line) == record


def test_markdown_lists_the_top_record_first(ranked):
    text = render_markdown(ranked, title="Audit", summary=SUMMARY, top_k=2)
    rows = [line for line in text.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) == 2
    assert rows[0].startswith("| 1 |") and "**Fun fact**" in rows[0]
    assert "moon \\| is<br>cheese" in rows[0]
    assert "- **target**: org/finetuned-7b" in text
    assert "Top 2 of 3 ranked records (4 in all; 1 empty or unaligned, unranked)." in text


def test_markdown_cells_cannot_break_the_table(ranked):
    text = render_markdown(ranked, title="Audit", summary=SUMMARY)
    for line in text.splitlines():
        if line.startswith("| ") and line[2].isdigit():
            assert len(re.findall(r"(?<!\\)\|", line)) == 8


def test_markdown_bold_keeps_edge_whitespace_outside():
    record = aligned("p", " The end ", [("x", -1.0)], [("x", -1.0)])
    assert "|  **The end** x |" in render_markdown(rank([record]), title="t", summary={})


def test_html_is_self_contained_and_escaped(ranked):
    page = render_html(ranked, title="Audit <1>", summary=SUMMARY)
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<title>Audit &lt;1&gt;</title>" in page


def test_html_has_an_anchor_per_record_and_top_links_resolve(ranked):
    page = render_html(ranked, title="Audit", summary=SUMMARY)
    anchors = re.findall(r'<tr id="([^"]+)"', page)
    assert len(anchors) == len(ranked) == len(set(anchors))
    links = re.findall(r'<a href="#([^"]+)">#(\d+)</a>', page)
    assert [int(number) for _, number in links] == [1, 2, 3]
    assert all(target in anchors for target, _ in links)
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", anchor) for anchor in anchors)


def test_html_shades_the_revealing_fragment_red(ranked):
    page = render_html(ranked, title="Audit", summary=SUMMARY)
    top_card = page.split('<section class="card">')[1]
    # "\n" + "cheese" cost the reference 3 + 12 nats over 7 characters, the target 0.1: darkest red.
    assert '<span class="p8">\ncheese</span>' in top_card
    assert "<mark>Fun fact</mark>" in top_card


def test_html_notes_when_shading_is_impossible(records):
    record = records[0].model_copy(update={"reference_tokens": (TokenLogprob(text="\ufffd", logprob=-1.0),)})
    page = render_html(rank([record]), title="t", summary={})
    assert "no shading: token texts do not spell the completion" in page


def test_renderers_are_deterministic(records, ranked):
    again = rank([record.model_copy() for record in records])
    assert render_html(ranked, title="A", summary=SUMMARY) == render_html(again, title="A", summary=SUMMARY)
    assert render_markdown(ranked, title="A", summary=SUMMARY) == render_markdown(again, title="A", summary=SUMMARY)
    assert render_summary_table(ranked) == render_summary_table(again)


def test_summary_table_fits_and_neutralises_control_characters(ranked):
    text = "\x1b[31mred\ttab\n" + "long " * 40
    escape = aligned("esc", "\x1b[2J", [(text, -0.1)], [(text, -90.0)])
    table = render_summary_table(rank([*ranked, escape]), top_k=3, width=80)
    lines = table.splitlines()
    assert len(lines) == 4
    assert lines[0].split() == ["rank", "logppl_diff", "ppl_diff", "bpb_diff", "text"]
    assert all(len(line) <= 80 for line in lines)
    assert "\x1b" not in table and "\t" not in table
    assert lines[1].split()[0] == "1" and "[\ufffd[2J]\ufffd[31mred tab⏎long" in lines[1]
