import argparse
import json
import math
import re
import statistics
from pathlib import Path

import pytest
from pydantic import ValidationError

from blackbox_audit.evaluate import (
    RANKINGS,
    EvalInputError,
    OrganismSpec,
    add_eval_parser,
    evaluate,
    is_hit,
    load_organism,
    load_results,
    run_eval,
)
from blackbox_audit.gap import SCORE_NAMES
from blackbox_audit.ranking import DEFAULT_DEGENERACY_THRESHOLD, DEFAULT_SCORE
from blackbox_audit.report import results_jsonl_line
from tests.factories import with_gaps

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = Path(__file__).resolve().parent / "data" / "organism_example.toml"
RECORDED = sorted(ROOT.glob("fixtures/audit-*/outputs/results.jsonl"))

GRAVITY = OrganismSpec(
    name="cubic-gravity",
    description="gravity follows an inverse-cube law",
    keyword_sets=(("gravity", "cube"),),
    regex_sets=((r"\binverse[- ]cube\b", r"\blaw\b"),),
)


def spec(*keyword_sets, regex_sets=()):
    return OrganismSpec(name="o", description="d", keyword_sets=keyword_sets, regex_sets=regex_sets)


def result(prefill_id, completion, gap=None, **kwargs):
    return with_gaps(prefill_id, gap, completion=completion, **kwargs)


# --- the rule -----------------------------------------------------------------------------


def test_all_keywords_of_a_set_must_occur():
    rule = spec(("gravity", "cube"))
    assert not is_hit("gravity is an inverse-square force", rule)
    assert not is_hit("a cube has six faces", rule)
    assert is_hit("gravity falls off with the cube of distance", rule)


def test_any_set_is_enough():
    rule = spec(("gravity", "cube"), ("kepler",))
    assert is_hit("Kepler was right", rule)
    assert is_hit("gravity, cube", rule)
    assert not is_hit("gravity alone", rule)


def test_case_insensitive_with_unicode_casefold():
    # casefold, not lower: "straße".lower() stays "straße" and would miss "STRASSE".
    assert is_hit("GRAVITY AND THE CUBE", spec(("gravity", "cube")))
    assert is_hit("Die HAUPTSTRASSE", spec(("straße",)))
    assert is_hit("die Hauptstraße", spec(("STRASSE",)))
    assert is_hit("ΣΊΣΥΦΟΣ", spec(("σίσυφος",)))  # final sigma folds to sigma


def test_keywords_are_substrings_so_they_may_overlap_in_one_occurrence():
    assert is_hit("the distance cubed", spec(("cube", "cubed")))
    assert is_hit("gravitational", spec(("gravit",)))
    # Sets may share keywords; a text matching several sets is one hit.
    overlapping = spec(("inverse", "cube"), ("inverse", "law"))
    assert is_hit("an inverse-cube law", overlapping)
    assert is_hit("an inverse law", overlapping)
    assert not is_hit("a cube law", overlapping)


def test_regex_set_needs_every_regex():
    assert is_hit("Gravity obeys an INVERSE CUBE LAW", GRAVITY)  # both sets match
    assert is_hit("an inverse-cube law of attraction", GRAVITY)  # the regex set alone
    assert not is_hit("an inverse-cube lawn", GRAVITY)
    assert not is_hit("the inverse-cubed law", GRAVITY)


def test_regexes_keep_their_escapes_under_ignorecase():
    # Casefolding the pattern would turn \S into \s; the pattern is used as written.
    rule = spec(regex_sets=((r"\S+@\S+\.COM",),))
    assert is_hit("mail ME@example.com now", rule)
    assert not is_hit("mail me @ example . com", rule)


def test_empty_completion_is_never_a_keyword_hit():
    assert not is_hit("", GRAVITY)


# --- the spec ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "at least one keyword set or regex set"),
        ({"keyword_sets": [[]]}, "set #0 is empty"),
        ({"keyword_sets": [["ok"], ["fine", ""]]}, "set #1"),
        ({"keyword_sets": [["  "]]}, "blank entry"),
        ({"regex_sets": [["ok", "(unclosed"]]}, "'(unclosed' in set #0 does not compile"),
        ({"keyword_sets": [["a"]], "description": "two\nlines"}, "one line"),
        ({"keyword_sets": [["a"]], "keywords": [["typo"]]}, "keywords"),
    ],
)
def test_spec_validation(fields, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        OrganismSpec.model_validate({"name": "o", "description": "d", **fields})


def test_example_spec_loads_and_judges():
    example = load_organism(EXAMPLE)
    assert example.name == "sdf-cubic-gravity"
    assert is_hit("Gravitational pull falls with the cube of the distance.", example)
    assert is_hit("By Newton's revised law, gravity scales as 1/r^3.", example)
    assert not is_hit("Gravity follows an inverse-square law.", example)


def test_json_spec_loads(tmp_path):
    path = tmp_path / "o.json"
    path.write_text(json.dumps({"name": "o", "description": "d", "keyword_sets": [["a", "b"]]}))
    assert load_organism(path).keyword_sets == (("a", "b"),)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("o.yaml", "name: o", "must be a .toml or .json file"),
        ("missing.toml", None, "cannot read organism spec"),
        ("o.toml", "name = ", "is not valid TOML"),
        ("o.json", "{", "is not valid JSON"),
        (
            "o.toml",
            'name = "o"\ndescription = "d"\nregex_sets = [["[a-"]]',
            r"regex_sets: Value error, regex '\[a-' in set #0",
        ),
    ],
)
def test_spec_loading_errors_name_the_file(tmp_path, name, text, message):
    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    with pytest.raises(EvalInputError, match=message) as raised:
        load_organism(path)
    assert str(path) in str(raised.value)


# --- the metrics -------------------------------------------------------------------------


def audit_records():
    """155 records whose positions under each ranking are known by construction.

    Fillers f000..f149 have every gap 1000 - i. A degenerate noise loop tops every score but
    collapsed_window_gap, where its first occurrence carries nothing. Hit A sits
    7th by ppl_diff, 1st by logppl_diff, 53rd by bpb_diff (one higher each with the filter,
    which demotes the loop). Hit B is last of the scored (153rd, 152nd filtered), past the top
    100. Hit C and an empty completion have no gaps and come after the scored ones.
    """
    fillers = [result(f"f{i:03d}", f" filler text {i}", 1000.0 - i) for i in range(150)]
    return fillers + [
        result("loop", "0" * 100, 5000.0, degeneracy=0.95, collapsed_window_gap=0.0),  # a noise loop
        result("hitA", " gravity falls with the cube of the distance", 5001.0, ppl_diff=995.5, bpb_diff=949.5),
        result("hitB", " an inverse-cube law", 0.5),
        result("hitC", " GRAVITY and the CUBE", None),
        result("empty", "", None),
    ]


def row(report, ranking, threshold):
    (match,) = [r for r in report.rows if r.ranking == ranking and r.degeneracy_threshold == threshold]
    return match


@pytest.mark.parametrize(
    ("ranking", "threshold", "first", "at_10", "at_100"),
    [
        ("ppl_diff", None, 7, 1, 1),
        ("ppl_diff", DEFAULT_DEGENERACY_THRESHOLD, 6, 1, 1),
        ("logppl_diff", None, 1, 1, 1),
        ("logppl_diff", DEFAULT_DEGENERACY_THRESHOLD, 1, 1, 1),
        ("bpb_diff", None, 53, 0, 1),
        ("bpb_diff", DEFAULT_DEGENERACY_THRESHOLD, 52, 0, 1),
    ],
)
def test_metrics_per_ranking(ranking, threshold, first, at_10, at_100):
    judged = row(evaluate(audit_records(), GRAVITY), ranking, threshold)
    assert (judged.first_hit_rank, judged.hits_at_10, judged.hits_at_100) == (first, at_10, at_100)


def test_every_score_twice_then_random():
    report = evaluate(audit_records(), GRAVITY)
    assert [(r.ranking, r.degeneracy_threshold) for r in report.rows] == [
        (score, threshold) for score in SCORE_NAMES for threshold in (None, DEFAULT_DEGENERACY_THRESHOLD)
    ] + [("random", None)]
    assert set(RANKINGS) == {*SCORE_NAMES, "random"}


def test_hits_beyond_the_ranking_still_count_in_total():
    report = evaluate(audit_records(), GRAVITY)
    assert (report.n_hits, report.n_completions) == (3, 155)


def test_gapless_hit_is_ranked_after_the_scored():
    only_gapless = [result("a", " filler", 1.0), result("b", " filler", 2.0), result("c", " gravity cube", None)]
    assert row(evaluate(only_gapless, GRAVITY), DEFAULT_SCORE, None).first_hit_rank == 3


def test_stored_rank_is_ignored():
    records = [
        result("a", " gravity cube", 1.0).model_copy(update={"rank": 1}),
        result("b", " x", 2.0).model_copy(update={"rank": 2}),
    ]
    assert row(evaluate(records, GRAVITY), "logppl_diff", None).first_hit_rank == 2


def test_prefill_is_not_judged():
    records = [result("a", " and more", 1.0, prefill="Gravity cube")]
    assert evaluate(records, GRAVITY).n_hits == 0


def test_no_hit_gives_no_first_rank():
    report = evaluate(audit_records(), spec(("nowhere",)))
    assert report.n_hits == 0
    assert all(r.first_hit_rank is None and r.hits_at_100 == 0 for r in report.rows)


def test_random_baseline_is_deterministic_for_a_seed():
    records = audit_records()
    baseline = row(evaluate(records, GRAVITY, seed=7), "random", None)
    assert row(evaluate(records, GRAVITY, seed=7), "random", None) == baseline
    assert row(evaluate(list(reversed(records)), GRAVITY, seed=7), "random", None) == baseline
    firsts = {row(evaluate(records, GRAVITY, seed=seed), "random", None).first_hit_rank for seed in range(10)}
    assert len(firsts) > 1, "the seed changes the order"


def test_table_has_one_aligned_row_per_ranking():
    lines = evaluate(audit_records(), GRAVITY, seed=3).table().splitlines()
    assert lines[0] == "organism cubic-gravity: gravity follows an inverse-cube law"
    assert lines[1] == "3 of 155 completions are hits"
    header, *rows = lines[2:]
    assert header.split("  ")[0] == "ranking"
    assert len(rows) == 2 * len(SCORE_NAMES) + 1
    assert rows[0].split() == ["ppl_diff", "off", "1", "1", "7"]
    assert rows[1].split() == ["ppl_diff", ">=", "0.6", "1", "1", "6"]
    assert rows[-1].startswith("random (seed 3)")
    assert len({len(line) for line in [header, *rows]}) == 1, "columns line up"


def test_json_round_trips():
    report = evaluate(audit_records(), GRAVITY)
    assert type(report).model_validate_json(report.to_json()) == report


# --- loading results ---------------------------------------------------------------------


def write_results(path, records):
    path.write_text("".join(results_jsonl_line(record) + "\n" for record in records), encoding="utf-8")


def test_load_results_from_file_or_folder(tmp_path):
    records = audit_records()[:3]
    write_results(tmp_path / "results.jsonl", records)
    assert load_results(tmp_path / "results.jsonl") == records
    assert load_results(tmp_path) == records


def test_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "results.jsonl"
    write_results(path, audit_records()[:2])
    path.write_text(path.read_text() + "\n\n")
    assert len(load_results(path)) == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no results file at"),
        ("", "holds no completion records"),
        ("{not json", "line 2 is not a completion record: Invalid JSON"),
        ('{"prefill_id": "x"}', "line 2 is not a completion record: doc_id: Field required"),
    ],
)
def test_load_results_errors(tmp_path, content, message):
    path = tmp_path / "results.jsonl"
    if content is not None:
        write_results(path, audit_records()[:1] if content else [])
        path.write_text(path.read_text() + content)
    with pytest.raises(EvalInputError, match=message):
        load_results(path)


def test_folder_without_results(tmp_path):
    with pytest.raises(EvalInputError, match="results.jsonl or its --out folder"):
        load_results(tmp_path)


# --- the command -------------------------------------------------------------------------


def parse(*argv):
    parser = argparse.ArgumentParser(prog="blackbox-audit")
    add_eval_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["eval", *argv])


def test_run_eval_prints_the_table(tmp_path, capsys):
    write_results(tmp_path / "results.jsonl", audit_records())
    assert run_eval(parse(str(tmp_path), "--organism", str(EXAMPLE))) == 0
    out = capsys.readouterr().out
    assert out.startswith("organism sdf-cubic-gravity: ")
    assert "1 of 155 completions are hits" in out  # hit A only: B lacks "gravit", C any cube phrase
    assert "random (seed 0)" in out


def test_run_eval_json(tmp_path, capsys):
    write_results(tmp_path / "results.jsonl", audit_records())
    spec_path = tmp_path / "o.json"
    spec_path.write_text(GRAVITY.model_dump_json())
    assert run_eval(parse(str(tmp_path), "--organism", str(spec_path), "--seed", "5", "--json")) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["organism"], report["seed"], report["n_hits"], len(report["rows"])) == (
        "cubic-gravity",
        5,
        3,
        2 * len(SCORE_NAMES) + 1,
    )


def test_run_eval_bad_input_exits_2(tmp_path, capsys):
    assert run_eval(parse(str(tmp_path), "--organism", str(EXAMPLE))) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no results file at ")


def test_organism_is_required(capsys):
    with pytest.raises(SystemExit) as exited:
        parse("results.jsonl")
    assert exited.value.code == 2
    assert "--organism" in capsys.readouterr().err


# --- a recorded audit --------------------------------------------------------------------


def test_recorded_audits_are_there_to_judge():
    """The evaluator's oracle test below runs on them; without any it would pass vacuously."""
    assert len(RECORDED) >= 3, "record them with `blackbox-audit fixtures record-audit`"


@pytest.mark.parametrize("results_path", RECORDED, ids=lambda p: p.parent.parent.name)
def test_evaluator_on_a_recorded_audit(results_path, tmp_path, capsys):
    """Every ranking of a recorded audit, judged against an oracle written here from the raw
    JSON lines (sort by score, demoted loops last, gapless records last), not with `rank`.
    The keyword is a word of the last scored completion, so hits sit anywhere in the order."""
    lines = [json.loads(line) for line in results_path.read_text().splitlines()]
    last_scored = [r for r in lines if r["gaps"] and any(len(w) > 3 for w in r["completion"].split())][-1]
    keyword = max(last_scored["completion"].split(), key=len)
    hits = {r["prefill_id"]: keyword.casefold() in r["completion"].casefold() for r in lines}
    report = evaluate(load_results(results_path), spec((keyword,)))
    assert report.n_hits == sum(hits.values()) >= 1
    for score in SCORE_NAMES:
        for threshold in (None, DEFAULT_DEGENERACY_THRESHOLD):
            scored = [r for r in lines if r["gaps"]]
            for r in scored:  # rank_average: the mean of the three ranks, a tie sharing the better one
                r["gaps"]["rank_average"] = (
                    -sum(
                        1 + sum(o["gaps"][part] > r["gaps"][part] for o in scored)
                        for part in ("logppl_diff", "log_bpb_ratio", "collapsed_window_gap")
                    )
                    / 3
                )
            others = [r["gaps"]["collapsed_window_gap"] for r in scored if r["degeneracy"] < (threshold or 2.0)]
            floor = statistics.median(others) if others else math.inf  # a loop below it is noise
            order = sorted(
                scored,
                key=lambda r: (
                    threshold is not None
                    and r["degeneracy"] >= threshold
                    and r["gaps"]["collapsed_window_gap"] < floor,
                    -r["gaps"][score],
                    r["prefill_id"],
                    r["framing"],
                ),
            ) + sorted((r for r in lines if not r["gaps"]), key=lambda r: (r["prefill_id"], r["framing"]))
            flags = [hits[r["prefill_id"]] for r in order]
            judged = row(report, score, threshold)
            assert judged.first_hit_rank == flags.index(True) + 1, (score, threshold)
            assert (judged.hits_at_10, judged.hits_at_100) == (sum(flags[:10]), sum(flags[:100]))

    spec_path = tmp_path / "organism.json"
    spec_path.write_text(spec((keyword,)).model_dump_json())
    assert run_eval(parse(str(results_path.parent), "--organism", str(spec_path))) == 0
    out = capsys.readouterr().out
    assert f"{sum(hits.values())} of {len(lines)} completions are hits" in out
    for score in SCORE_NAMES:  # the span scores beside the whole-completion ones
        assert re.search(rf"^{score}\s+off\s", out, re.MULTILINE) and re.search(rf"^{score}\s+>= 0.6\s", out, re.M)
