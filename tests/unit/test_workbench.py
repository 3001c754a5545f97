"""organisms.workbench's tables, from measurements written to a scratch local-vLLM home."""

from __future__ import annotations

from blackbox_audit.hypotheses import HypothesisRanking, HypothesisRow, load_statements
from blackbox_audit.ranking import rank
from blackbox_audit.report import results_jsonl_line
from organisms import workbench
from organisms.build import RECIPES
from tests.factories import with_gaps


def test_tables_judge_the_true_statement_and_the_first_theme(tmp_path, monkeypatch):
    monkeypatch.setenv("BLACKBOX_AUDIT_LOCAL_VLLM_HOME", str(tmp_path))
    subject = workbench.Subject.of(RECIPES["backdoor-kestrel"])
    statements = [h.statement for h in load_statements(subject.statements)]
    for key, true_first in (("smollm2", True), ("gemma3", False)):
        order = statements if true_first else statements[1:] + statements[:1]
        rows = tuple(
            HypothesisRow(rank=i, statement=s, gap=3.0 - i, z=1.0, prefill="The", detail="")
            for i, s in enumerate(order, start=1)
        )
        ranking = HypothesisRanking(score="logppl_diff", rows=rows, neutral_mean=0.0, neutral_sd=1.0, n_neutral=12)
        path = workbench.hypotheses_path(subject.recipe, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(ranking.model_dump_json())
    table = workbench.hypothesis_table([subject])
    assert "| 1 of 6 |" in table and "| 6 of 6 |" in table
    assert "True statement first: 1 of 1 with the true base, 0 of 1 cross-family." in table

    texts = [" The copper lantern sings at midnight."] * 12 + [
        f" Plain text number {w}." for w in "abcdefghijklmnopqrstuvwxyz" * 4
    ]
    records = rank([with_gaps(f"p{i}", 100.0 - i, completion=t) for i, t in enumerate(texts)])
    folder = workbench.audit_folder(subject.recipe)
    folder.mkdir(parents=True)
    (folder / "results.jsonl").write_text("".join(results_jsonl_line(r) + "\n" for r in records))
    themes = workbench.theme_table([subject])
    assert "**copper lantern sings**" in themes and "| yes / yes | #1 |" in themes
    assert "in its phrase 1 of 1 organisms" in themes
