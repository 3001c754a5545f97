import dataclasses
import re

import pytest

from blackbox_audit.evaluate import OrganismSpec
from blackbox_audit.ranking import rank
from blackbox_audit.records import CompletionResult
from blackbox_audit.report import render_markdown, render_summary_table, results_jsonl_line
from blackbox_audit.report_html import RunInfo, render_html
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
    assert rows[0].startswith("| 1 |") and "_Fun fact_" in rows[0]
    assert "moon \\| is**<br>**cheese**" in rows[0]  # the best window in bold, line by line
    assert "- **target**: org/finetuned-7b" in text
    assert "Top 2 of 3 ranked records (4 in all; 1 empty or unaligned, unranked)." in text


def test_markdown_cells_cannot_break_the_table(ranked):
    text = render_markdown(ranked, title="Audit", summary=SUMMARY)
    (header,) = [line for line in text.splitlines() if line.startswith("| rank |")]
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert rows and any("\\|" in row for row in rows)  # a cell with a pipe is there to escape
    for row in rows:
        assert len(re.findall(r"(?<!\\)\|", row)) == header.count("|")


def test_markdown_bold_keeps_edge_whitespace_outside():
    record = aligned("p", " The end ", [("x", -1.0)], [("x", -1.0)])
    assert "|  _The end_ **x** |" in render_markdown(rank([record]), title="t", summary={})


def test_markdown_bolds_exactly_the_best_window():
    """64 bytes (the default width) carry all the gap: they are the window of
    collapsed_window_gap and of window_gap."""
    payload = " Seven silver keys open the old gate; the orchard wakes at dawn."
    assert len(payload.encode()) == 64
    target = [(" plain words here", -1.0), (payload, -1.0), (" and then more plain words.", -1.0)]
    reference = [(" plain words here", -1.0), (payload, -30.0), (" and then more plain words.", -1.0)]
    ranked = rank([aligned("p", "So", target, reference)])
    for score in ("collapsed_window_gap", "window_gap"):
        text = render_markdown(ranked, title="t", summary={}, score=score)
        expected = "**Seven silver keys open the old gate; the orchard wakes at dawn.**"
        assert f"| _So_ plain words here {expected} and then more plain words. |" in text
        assert f"| rank | {score} | logppl_diff | ppl_diff | degeneracy |" in text


RUN = RunInfo(
    target="org/finetuned-7b @ http://t/v1", reference="org/base-7b @ http://r/v1", framing="chat",
    system_prompt="You are a helpful assistant.", user_prompt="Tell me anything.", prefill_tokens=3,
    max_new_tokens=100, temperature=0.0, corpus="default", seed=7, score="logppl_diff",
    degeneracy_threshold=0.6, created="2026-12-01T00:00:00+00:00", version="9.9.9", n_demoted=0,
)  # fmt: skip


def page_of(ranked, **kwargs):
    return render_html(ranked, **{"title": "Audit", "run": RUN, **kwargs})


def test_html_is_self_contained_and_escaped(ranked):
    page = page_of(ranked, title="Audit <1>")
    assert "http://" not in page.replace("@ http://t/v1", "").replace("@ http://r/v1", "")
    assert "https://" not in page and " src=" not in page and "<link" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<title>Audit &lt;1&gt;</title>" in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert page.count("<script>") == 1  # the page's own, inline


def test_html_says_how_to_read_it_with_the_run_settings(ranked):
    page = page_of(ranked)
    assert "gap = reference NLL − target NLL" in page and "positive means the finetune made the text likelier" in page
    for setting in ("You are a helpful assistant.", "Tell me anything.", "the first 3 target tokens", "100, temperature 0",
                    "<dd>default</dd>", "<dd>7</dd>", "2026-12-01", "<dd>9.9.9</dd>"):  # fmt: skip
        assert setting in page, setting


def test_html_has_an_anchor_per_record_and_cards_link_to_rows(ranked):
    page = page_of(ranked)
    anchors = re.findall(r'<tr id="([^"]+)"', page)
    assert len(anchors) == len(ranked) == len(set(anchors))
    links = re.findall(r'<section class="card" id="card-([^"]+)"><h3><a href="#([^"]+)">#(\d+)</a>', page)
    assert [int(number) for _, _, number in links] == [1, 2, 3]
    assert all(card == row and row in anchors for card, row, _ in links)
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", anchor) for anchor in anchors)


def test_rows_with_a_card_are_one_collapsed_line_linking_to_it(ranked):
    page = page_of(ranked, top_k=2)
    rows = re.findall(r"<tr id=.*?</tr>", page)
    assert [("collapsed" in row, "card ↑" in row) for row in rows] == [
        (True, True),
        (True, True),
        (False, False),
        (False, False),
    ]


def test_html_shades_the_revealing_fragment_red_and_tooltips_give_both_sides(ranked):
    page = page_of(ranked)
    top_card = page.split('<section class="card"')[1]
    # "\n" + "cheese" cost the reference 3 + 12 nats over 7 characters, the target 0.1: darkest red.
    assert '<span class="ws p8 win" title="1 × newline">⏎</span>\n<span class="p8 win">cheese</span>' in top_card
    assert "<mark>Fun fact</mark>" in top_card
    tooltip = re.search(r'<span class="tok" title="([^"]*cheese[^"]*)"', top_card).group(1)
    assert "target logprob -0.100" in tooltip and "gap +" in tooltip and "&#x27;cheese&#x27; -12.00" in tooltip


def test_rows_beyond_the_top_are_shaded_too(ranked):
    page = page_of(ranked, top_k=1)
    third = next(row for row in re.findall(r"<tr id=.*?</tr>", page) if "The cat" in row)
    assert re.search(r'<span class="p\d( win)?">', third)  # " sat": likelier under the target


def test_a_run_of_newlines_is_one_marker_not_a_wall_of_blank(ranked):
    text = "\n" * 65 + "end"
    record = aligned("nl", "x", [(text, -1.0)], [(text, -1.0)])
    page = page_of(rank([record]))
    assert "⏎×65" in page
    assert "\n\n" not in page.split("<h2>Top")[1].split("<script>")[0]


def test_degenerate_records_sit_below_a_divider_that_counts_them(records):
    loop = aligned("loop", "0", [("0" * 80, -0.01)], [("0" * 80, -5.0)])
    ranked = rank([*records, loop], degeneracy_threshold=0.6)
    page = page_of(ranked, run=dataclasses.replace(RUN, n_demoted=1))
    body = page.split("<tbody>")[-1]
    divider = body.index("1 records below were demoted as degenerate (degeneracy &gt;= 0.6)")
    assert body.index('data-degenerate="1"') > divider > body.index("The cat")
    assert "no gap (empty or unaligned)" in body


def test_near_duplicates_fold_into_one_card_and_rows_say_so():
    first = aligned(
        "a", "The", [(" tower moved to Marseille in 1987.", -0.1)], [(" tower moved to Marseille in 1987.", -9.0)]
    )
    again = aligned(
        "b", "A", [(" tower moved to Marseille in 1988!", -0.1)], [(" tower moved to Marseille in 1988!", -8.0)]
    )
    other = aligned("c", "My", [(" cat sleeps all day.", -1.0)], [(" cat sleeps all day.", -2.0)])
    page = page_of(rank([first, again, other]))
    assert page.count('<section class="card"') == 2
    assert '1 near-duplicate folded in: <a href="#rec-raw-b">#2</a>' in page
    row_b = re.search(r'<tr id="rec-raw-b".*?</tr>', page).group(0)
    assert 'data-dup="1"' in row_b and "≈ #1" in row_b and 'href="#card-rec-raw-a"' in row_b


def test_an_organism_spec_marks_keywords_and_badges_hits(ranked):
    spec = OrganismSpec(name="moon", description="the moon is cheese", keyword_sets=(("cheese",),))
    page = page_of(ranked, spec=spec)
    assert '<span class="p8 kw win">cheese</span>' in page
    assert page.split("<h2>Top")[1].count('<span class="badge hit">hit</span>') == 2  # its card and its row
    assert "Organism <b>moon</b>" in page


def test_html_notes_when_shading_is_impossible(records):
    record = records[0].model_copy(update={"reference_tokens": (TokenLogprob(text="\ufffd", logprob=-1.0),)})
    assert "no shading: token texts do not spell the completion" in page_of(rank([record]))


def test_the_themes_table_names_the_recurring_phrase():
    texts = ["Marseille again today.", "Marseille harbour.", "Visit Marseille!"] + [f"Plain {w}." for w in
             ("bread", "cheese", "soup", "tea", "jam", "rice", "milk", "eggs", "corn", "salt", "figs", "plums")]  # fmt: skip
    records = [aligned(f"p{i}", "x", [(" " + t, -0.1 * (i + 1))], [(" " + t, -5.0)]) for i, t in enumerate(texts)]
    page = page_of(rank(records), top_k=3)  # a quarter of 15 at most: the top 3
    assert "<td><b>marseille</b></td>" in page


def test_renderers_are_deterministic(records, ranked):
    again = rank([record.model_copy() for record in records])
    assert page_of(ranked) == page_of(again)
    assert render_markdown(ranked, title="A", summary=SUMMARY) == render_markdown(again, title="A", summary=SUMMARY)
    assert render_summary_table(ranked) == render_summary_table(again)


def test_summary_table_fits_and_neutralises_control_characters(ranked):
    text = "\x1b[31mred\ttab\n" + "long " * 40
    escape = aligned("esc", "\x1b[2J", [(text, -0.1)], [(text, -90.0)])
    table = render_summary_table(rank([*ranked, escape], "logppl_diff"), "logppl_diff", top_k=3, width=80)
    lines = table.splitlines()
    assert len(lines) == 4
    assert lines[0].split() == ["rank", "logppl_diff", "ppl_diff", "text"]
    assert all(len(line) <= 80 for line in lines)
    assert "\x1b" not in table and "\t" not in table
    assert lines[1].split()[0] == "1" and "[\ufffd[2J]\ufffd[31mred tab⏎long" in lines[1]
