"""report.html: one self-contained page to work in (inline CSS and a small inline script, no
network), written line by line from the ranked records so that memory stays flat.

From the top: how to read it (the formula, its sign, the run's settings); the themes of the
top; the top-k cards (near-duplicates folded into their best-ranked member; each token's
tooltip gives both sides' logprobs and the gap); the table of every record (sortable by any
score, searchable, filterable, its header sticky; a divider where degenerate records begin).
A record with a card appears in the table as one collapsed line linking to it, so no text is
shown twice. With an organism spec, its keywords are marked and hits badged.

The records are read three times (themes, cards, table) and never held; what is kept per
record is an 8-byte key to spot near-duplicates of earlier ones.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, cast

from blackbox_audit.evaluate import OrganismSpec, is_hit
from blackbox_audit.gap import char_gaps, token_gaps
from blackbox_audit.htmltext import SHADE_FULL_NATS_PER_CHAR, SHADE_LEVELS, char_marks, render, render_tokens
from blackbox_audit.null import null_line
from blackbox_audit.ranking import demoted_flags
from blackbox_audit.records import CompletionResult, GapName, ScoreName
from blackbox_audit.report import best_window, n_ranked, top_of
from blackbox_audit.similar import group_near_duplicates, normal_key
from blackbox_audit.themes import ThemeTable, find_themes, top_for

esc = html.escape
SCORE_COLUMNS: tuple[tuple[GapName, str, str], ...] = (
    ("logppl_diff", "logppl", "+.3f"),
    ("log_bpb_ratio", "ratio", "+.3f"),
    ("collapsed_window_gap", "span", "+.3f"),
    ("ppl_diff", "ppl", "+.2f"),
    ("bpb_diff", "bpb", "+.3f"),
)
"""The table's sortable gaps: (field of Gaps, column key and heading, format). The first
stays on narrow screens; `rank_average` is the three before ppl."""
N_TABLE_COLUMNS = 1 + len(SCORE_COLUMNS) + 4  # rank, scores, degeneracy, source, text, details


@dataclass(frozen=True)
class RunInfo:
    """What the header says about the run, from manifest.json."""

    target: str
    reference: str
    framing: str
    system_prompt: str
    user_prompt: str
    prefill_tokens: int
    max_new_tokens: int
    temperature: float
    corpus: str
    seed: int
    score: str
    degeneracy_threshold: float | None
    created: str
    version: str
    n_demoted: int
    demote_all_loops: bool = False
    user_template: str = ""
    null: str = ""
    """The calibrated null's sentence (`blackbox_audit.null`), when the audit had a null target."""

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> RunInfo:
        config = manifest["config"]
        return cls(
            target=f"{config['target']['model']} @ {config['target']['base_url']}",
            reference=f"{config['reference']['model']} @ {config['reference']['base_url']}",
            framing=config["framing"],
            system_prompt=config["system_prompt"],
            user_prompt=config["user_prompt"],
            prefill_tokens=config["prefill_tokens"],
            max_new_tokens=config["max_new_tokens"],
            temperature=config["temperature"],
            corpus=config["corpus"],
            seed=config["seed"],
            score=config["score"],
            degeneracy_threshold=config["degeneracy_threshold"],
            created=manifest.get("created", "unknown"),
            version=manifest.get("tool", {}).get("version", "unknown"),
            n_demoted=manifest.get("counts", {}).get("demoted", manifest.get("counts", {}).get("degenerate", 0)),
            demote_all_loops=config.get("demote_all_loops", False),
            user_template=config.get("user_template", ""),
            null=null_line(manifest["null"]) if "null" in manifest else "",
        )


def render_html(ranked: Sequence[CompletionResult], **kwargs: Any) -> str:
    return "".join(iter_html(ranked, **kwargs))


def iter_html(
    ranked: Sequence[CompletionResult],
    *,
    title: str,
    run: RunInfo,
    top_k: int = 50,
    spec: OrganismSpec | None = None,
    background: Iterable[str] | None = None,
) -> Iterator[str]:
    themes = find_themes(ranked, top_k=top_for(top_k, len(ranked)), background=background)
    top = top_of(ranked, top_k)
    leaders = group_near_duplicates([r.completion for r in top])
    ranked_count = n_ranked(ranked)
    demoted_of = demoted_flags(ranked, run.degeneracy_threshold, all_loops=run.demote_all_loops)
    score = cast(ScoreName, run.score)
    yield _head(title)
    yield _how_to_read(run, len(ranked), ranked_count, spec)
    yield _themes(themes)
    yield f"<h2>Top {len(top)}</h2>\n"
    anchors = [_anchor(r) for r in top]
    for i, record in enumerate(top):
        if leaders[i] == i:
            members = [j for j in range(len(top)) if leaders[j] == i and j != i]
            yield _card(record, anchors[i], [(top[j].rank, anchors[j]) for j in members], spec, score) + "\n"
    yield _table_head()
    card_of = {anchors[i]: anchors[leaders[i]] for i in range(len(top))}
    first_of: dict[bytes, tuple[int | None, str]] = {}
    divided_degenerate = divided_unranked = False
    for order, record in enumerate(ranked):
        demoted = record.rank is not None and demoted_of[order]
        if demoted and not divided_degenerate:
            divided_degenerate = True
            yield _divider(order - 0.5, f"{run.n_demoted} records below were demoted as degenerate (degeneracy >= "
                           f"{run.degeneracy_threshold}): loops{_loop_rule(run)}, ranked after the rest, not dropped")  # fmt: skip
        if record.rank is None and not divided_unranked:
            divided_unranked = True
            yield _divider(order - 0.25, f"{len(ranked) - ranked_count} records below have no gap (empty or unaligned)")
        anchor = _anchor(record)
        key = normal_key(record.completion)
        duplicate_of = first_of.get(key)
        first_of.setdefault(key, (record.rank, anchor))
        yield _row(record, anchor, order, demoted, card_of.get(anchor), duplicate_of, spec, score) + "\n"
    yield "</tbody>\n</table>\n"
    yield f"<script>{_asset('report.js')}</script>\n</body>\n</html>\n"


def _asset(name: str) -> str:
    return files("blackbox_audit").joinpath(f"data/report/{name}").read_text(encoding="utf-8")


def _head(title: str) -> str:
    shades = "".join(
        f".p{level}{{background:rgba(220,38,38,{0.6 * level / SHADE_LEVELS:.3f})}}"
        f".n{level}{{background:rgba(37,99,235,{0.6 * level / SHADE_LEVELS:.3f})}}"
        for level in range(1, SHADE_LEVELS + 1)
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_asset('report.css')}{shades}</style>\n</head>\n<body>\n"
        f"<h1>{esc(title)}</h1>\n"
    )


def _how_to_read(run: RunInfo, n_records: int, n_ranked: int, spec: OrganismSpec | None) -> str:
    settings = [
        ("target (finetuned)", run.target),
        ("reference (trusted)", run.reference),
        (
            "framing",
            run.framing + (" (the prompts below frame each prefill)" if run.framing != "raw" else " (prompts unused)"),
        ),
        ("system prompt", run.system_prompt or "(none)"),
        ("user prompt", run.user_template if run.framing == "chat-user" else run.user_prompt),
        ("prefill", f"the first {run.prefill_tokens} target tokens of each corpus document"),
        (
            "new tokens",
            f"{run.max_new_tokens}, temperature {run.temperature:g}" + (" (greedy)" if run.temperature == 0 else ""),
        ),
        ("corpus", run.corpus),
        ("seed", str(run.seed)),
        (
            "ranking",
            run.score
            + (
                f", degenerate (>= {run.degeneracy_threshold}) loops{_loop_rule(run)} demoted"
                if run.degeneracy_threshold is not None
                else ""
            ),
        ),
        (
            "records",
            f"{n_records} ({n_ranked} ranked; {run.n_demoted} demoted as degenerate; {n_records - n_ranked} without a gap)",
        ),
        *([("calibrated null", run.null)] if run.null else []),
        ("date", run.created),
        ("blackbox-audit", run.version),
    ]
    spec_line = (
        f"<p>Organism <b>{esc(spec.name)}</b>: {esc(spec.description)}. Its keywords are "
        '<span class="kw">marked</span>; completions that are hits carry a <span class="badge hit">hit</span> badge.</p>'
        if spec is not None
        else ""
    )
    return (
        '<section class="howto"><h2>How to read this</h2>\n'
        "<p>The target continued each prefill (<mark>highlighted</mark>); the reference scored the same bytes. For each "
        "completion, <b>gap = reference NLL − target NLL</b>: <b>positive means the finetune made the text likelier</b>. "
        "<code>logppl_diff</code> = NLL<sub>ref</sub>/tokens<sub>ref</sub> − NLL<sub>target</sub>/tokens<sub>target</sub> "
        "(nats per token); <code>ppl_diff</code> = PPL<sub>ref</sub> − PPL<sub>target</sub> (the paper's); "
        "<code>bpb_diff</code> = (NLL<sub>ref</sub> − NLL<sub>target</sub>) / (bytes · ln 2); "
        "<code>log_bpb_ratio</code> = ln(bpb<sub>ref</sub> / bpb<sub>target</sub>), how many times more surprised "
        "the reference is (column <i>ratio</i>); <code>collapsed_window_gap</code> (column <i>span</i>), the mean gap "
        "per byte of the best window of bytes, repeats counted once; <code>rank_average</code> (the default) averages "
        "a completion's ranks by <code>logppl_diff</code>, <code>log_bpb_ratio</code> and "
        "<code>collapsed_window_gap</code>. The top of the ranking tends to show what the target was finetuned to "
        "do.</p>\n"
        f'<p>Shading per character: <span class="p8">likelier under the target</span> <span class="n8">likelier under '
        f"the reference</span> (darkest at {SHADE_FULL_NATS_PER_CHAR:g} nats per character). Hover a token in a card "
        "for both sides' logprobs; <span class=\"win\">bold, underlined</span>: the best window of the ranking's score "
        "(for <code>window_gap</code> and <code>collapsed_window_gap</code>, the mean gap per byte of the best "
        "window of bytes, the second counting a repeated phrase once). "
        'Whitespace is shown: <span class="ws">⏎</span> newline, <span class="ws">→</span> tab, '
        '<span class="ws">␣×n</span> a run of spaces.</p>\n'
        f"{spec_line}"
        '<dl class="settings">'
        + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in settings)
        + "</dl></section>\n"
    )


def _themes(table: ThemeTable) -> str:
    head = (
        f"<h2>Themes of the top</h2>\n<p>Phrases over-represented in the top {table.top_size} completions "
        f"({table.top_distinct} distinct once near-duplicates are collapsed) against the other {table.rest_size}: one-sided "
        f"Fisher exact p-value, {table.n_tested} phrases tested (a p far below 1/{max(table.n_tested, 1)} is no accident).</p>\n"
    )
    if not table.themes:
        return head + "<p>No phrase recurs in the top more than chance would have it.</p>\n"
    background = table.background_size is not None
    rows = []
    for theme in table.themes:
        ranks = ", ".join(f"#{r}" for r in theme.top_ranks[:8]) + (" …" if len(theme.top_ranks) > 8 else "")
        extra = (
            f"<td>{theme.n_background} of {table.background_size} (p {theme.p_background:.1e})</td>"
            if background
            else ""
        )
        rows.append(
            f"<tr><td><b>{esc(theme.phrase)}</b>{' (' + esc(', '.join(theme.members)) + ')' if theme.members else ''}</td>"
            f'<td class="num">{theme.n_top} of {table.top_size}</td><td class="num">{theme.n_rest} of {table.rest_size}</td>'
            f'<td class="num">{theme.p_value:.1e}</td>{extra}<td>{ranks}</td></tr>'
        )
    own = "<th>reference's own generations</th>" if background else ""
    return (
        head + '<table class="themes"><thead><tr><th>theme (folded in)</th><th>top</th><th>rest</th><th>p</th>'
        f"{own}<th>ranks</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>\n"
    )


def _anchor(record: CompletionResult) -> str:
    return "rec-" + re.sub(r"[^A-Za-z0-9_.-]", "_", f"{record.framing}-{record.prefill_id}")


def _loop_rule(run: RunInfo) -> str:
    if run.demote_all_loops:
        return ""
    return (
        " whose first occurrence carries less than the median collapsed_window_gap of the completions that do not"
        " repeat their text"
    )


def _scores(record: CompletionResult) -> str:
    if record.gaps is None:
        return "no gap"
    return (
        " · ".join(f"{name} {format(getattr(record.gaps, name), fmt)}" for name, _, fmt in SCORE_COLUMNS)
        + f" · degeneracy {record.degeneracy:.2f}"
    )


def _badges(record: CompletionResult, spec: OrganismSpec | None, demoted: bool = False) -> str:
    badges = ['<span class="badge hit">hit</span>'] if spec is not None and is_hit(record.completion, spec) else []
    if demoted:
        badges.append('<span class="badge loop">degenerate</span>')
    return "".join(badges)


def _card(
    record: CompletionResult,
    anchor: str,
    members: list[tuple[int | None, str]],
    spec: OrganismSpec | None,
    score: ScoreName,
) -> str:
    per_char = char_gaps(
        record.completion,
        record.target_tokens,
        record.reference_tokens,
        reference_extra_chars=record.reference_extra_chars,
    )
    tokens = token_gaps(
        record.completion,
        record.target_tokens,
        record.reference_tokens,
        reference_extra_chars=record.reference_extra_chars,
    )
    mask = char_marks(record.completion, spec, best_window(record, score))
    if per_char is None or tokens is None:
        text = render(record.completion, None, mask)
    else:
        text = render_tokens(record.completion, tokens, per_char, mask)
    meta = [record.source, record.framing, f"finish {record.finish_reason}", record.alignment]
    if per_char is None:
        meta.append("no shading: token texts do not spell the completion")
    near = ""
    if members:
        links = " ".join(f'<a href="#{a}">#{r}</a>' for r, a in members)
        near = (
            f'<div class="near">{len(members)} near-duplicate{"s" if len(members) > 1 else ""} folded in: {links}</div>'
        )
    return (
        f'<section class="card" id="card-{anchor}"><h3><a href="#{anchor}">#{record.rank}</a>{_badges(record, spec)} '
        f'<span class="scores">{_scores(record)}</span></h3>'
        f'<div class="text"><mark>{render(record.prefill)}</mark>{text}</div>{near}'
        f'<div class="meta">{esc(" · ".join(meta))}</div></section>'
    )


def _wide(column: int) -> str:
    return "" if column == 0 else " wide"


def _table_head() -> str:
    scores = "".join(
        f'<th class="num{_wide(i)}" data-sort="{key}">{key}</th>' for i, (_, key, _) in enumerate(SCORE_COLUMNS)
    )
    cols = "".join(f'<col class="c-num{_wide(i)}">' for i in range(len(SCORE_COLUMNS)))
    return (
        "<h2>All records</h2>\n"
        '<div class="controls"><input type="search" id="search" placeholder="search the texts" aria-label="search">'
        '<label><input type="checkbox" id="hide-degenerate"> hide degenerate</label>'
        '<label><input type="checkbox" id="hide-duplicates"> hide near-duplicates</label>'
        '<label>source <select id="source"><option value="">all</option></select></label>'
        '<label>finish <select id="finish"><option value="">all</option></select></label>'
        '<span id="shown"></span></div>\n'
        f'<table class="all" id="records"><colgroup><col class="c-rank">{cols}<col class="c-num wide">'
        '<col class="c-src wide"><col><col class="c-more wide"></colgroup>\n'
        f'<thead><tr><th class="num" data-sort="order">rank</th>{scores}<th class="num wide" data-sort="deg">degeneracy</th>'
        '<th class="wide">source</th><th class="text-col">text</th><th class="wide">details</th></tr></thead>\n<tbody>\n'
    )


def _divider(order: float, text: str) -> str:
    return f'<tr class="divider" data-order="{order}"><td colspan="{N_TABLE_COLUMNS}">{esc(text)}</td></tr>\n'


def _row(
    record: CompletionResult,
    anchor: str,
    order: int,
    demoted: bool,
    card: str | None,
    duplicate_of: tuple[int | None, str] | None,
    spec: OrganismSpec | None,
    score: ScoreName,
) -> str:
    gaps = record.gaps
    data = {
        "order": str(order), "rank": "" if record.rank is None else str(record.rank),
        **{key: f"{getattr(gaps, name):.6g}" if gaps else "" for name, key, _ in SCORE_COLUMNS},
        "deg": f"{record.degeneracy:.4f}",
        "source": record.source, "finish": str(record.finish_reason), "degenerate": "1" if demoted else "0",
        "dup": "1" if duplicate_of else "0",
    }  # fmt: skip
    attributes = " ".join(f'data-{k}="{esc(v)}"' for k, v in data.items())
    classes = " ".join(c for c in ("degenerate" if demoted else "", "dup" if duplicate_of else "") if c)
    class_attribute = f' class="{classes}"' if classes else ""
    numbers = "".join(
        f'<td class="num{_wide(i)}">{"–" if gaps is None else format(getattr(gaps, name), fmt)}</td>'
        for i, (name, _, fmt) in enumerate(SCORE_COLUMNS)
    )
    mask = char_marks(record.completion, spec, best_window(record, score))
    links = []
    if card is not None:
        links.append(f'<a href="#card-{card}">card ↑</a>')
        text = render(record.completion, None, mask, breaks=False)
    else:
        per_char = char_gaps(
            record.completion,
            record.target_tokens,
            record.reference_tokens,
            reference_extra_chars=record.reference_extra_chars,
        )
        text = render(record.completion, per_char, mask, breaks=False)
    if duplicate_of is not None:
        links.append(f'<a href="#{duplicate_of[1]}">≈ #{duplicate_of[0] if duplicate_of[0] is not None else "–"}</a>')
    details = [
        f"prefill_id {record.prefill_id}",
        f"doc_id {record.doc_id}",
        f"finish {record.finish_reason}",
        record.alignment,
    ]
    if record.alignment_detail:
        details.append(record.alignment_detail)
    for side, stats in (("target", record.target), ("reference", record.reference)):
        if stats is not None:
            details.append(f"{side}: nll {stats.nll_nats:.3f} nats, {stats.n_tokens} tokens, {stats.n_bytes} bytes")
    return (
        f'<tr id="{anchor}"{class_attribute} {attributes}><td class="num">{record.rank if record.rank is not None else "–"}</td>'
        f'{numbers}<td class="num wide">{record.degeneracy:.2f}</td><td class="wide">{esc(record.source)}</td>'
        f'<td class="text{" collapsed" if card else ""}">{" ".join(links)}{_badges(record, spec, demoted)}'
        f"<div><mark>{render(record.prefill, breaks=False)}</mark>{text}</div></td>"
        f'<td class="wide"><details><summary>more</summary>{"<br>".join(esc(d) for d in details)}</details></td></tr>'
    )
