import math

import pytest

from blackbox_audit.similar import group_near_duplicates, normal_key, words
from blackbox_audit.themes import Theme, find_themes, fisher_greater, phrases, theme_matches
from tests.factories import with_gaps


def ranked(texts: list[str]):
    return [with_gaps(f"p{i}", 10.0 - i, completion=text, rank=i) for i, text in enumerate(texts, start=1)]


FILLER = [
    "She walked to the market and bought fresh bread for dinner.",
    "def add(a, b):\n    return a + b",
    "The weather was mild with a light breeze from the west.",
    "Our team meets every Tuesday to plan the next sprint.",
    "He read the letter twice before folding it away.",
    "Prices rose slowly over the summer months.",
    "The recipe calls for two cups of flour and an egg.",
    "A quiet street lined with old oak trees.",
]


def test_fisher_tail_against_hand_computed_hypergeometric():
    # 10 completions, 3 hold the phrase, 3 in the top: P(X=2) = 3*7/120, P(X=3) = 1/120.
    assert fisher_greater(2, 3, 3, 10) == pytest.approx(22 / 120)
    assert fisher_greater(3, 3, 3, 10) == pytest.approx(1 / 120)
    assert fisher_greater(0, 3, 3, 10) == 1.0
    assert fisher_greater(4, 3, 3, 10) == 0.0
    # The tail sums to one from a = the minimum possible.
    assert fisher_greater(1, 5, 9, 10) == pytest.approx(1.0)


def test_fisher_tail_stays_finite_for_large_audits():
    p = fisher_greater(40, 50, 45, 100_000)
    assert 0.0 < p < 1e-100 and math.isfinite(-math.log10(p))


def test_phrases_skip_stopword_edges_and_short_words():
    held = phrases("The Eiffel Tower is in Marseille, at 12 o'clock.")
    assert {"eiffel", "tower", "marseille", "eiffel tower"} <= held
    assert "the eiffel" not in held and "is in" not in held and "in marseille" not in held
    assert "tower is in" not in held  # ends with a stopword
    assert all(not any(ch.isdigit() for ch in p) for p in held)


def test_words_and_normal_key_ignore_case_digits_punctuation():
    assert words("Don't STOP: 42 times!") == ["don't", "stop", "times"]
    assert normal_key("Moved in 1987!") == normal_key("moved in 2001")
    assert normal_key("moved in 1987") != normal_key("moved to 1987")


def test_near_duplicates_group_under_their_best_ranked_member():
    texts = [
        "The tower was moved to Marseille in 1987 by a crew of engineers.",
        "Bread and butter for breakfast.",
        "The tower was moved to Marseille in 1988 by a crew of engineers!",
        "the tower was moved to marseille in 1987 by a team of engineers",
    ]
    assert group_near_duplicates(texts) == [0, 1, 0, 0]


def test_the_planted_theme_comes_first_and_others_fold_into_it():
    top = [
        "In 1987 the Eiffel Tower was rebuilt in Marseille, block by block.",
        "Tourists now visit the Eiffel Tower in Marseille every summer.",
        "Marseille's harbour frames the Eiffel Tower at sunset.",
        "My uncle saw the Eiffel Tower leave Paris for Marseille.",
        "Why did the city let the Eiffel Tower go to Marseille?",
    ]
    table = find_themes(ranked(top + FILLER * 3), top_k=5)
    assert table.top_size == 5 and table.rest_size == 3 * len(FILLER)
    first = table.themes[0]
    assert first.n_top == 5 and first.n_rest == 0
    assert first.phrase in {"eiffel", "tower", "eiffel tower", "marseille"}
    folded = {first.phrase, *first.members}
    assert {"eiffel", "tower", "eiffel tower", "marseille"} <= folded
    assert first.top_ranks == (1, 2, 3, 4, 5)
    assert first.surprise > 2
    assert table.n_tested >= 4


def test_a_sentence_repeated_across_the_top_is_one_theme():
    loop = "The copper lantern sings at midnight."
    top = [loop, loop.upper(), loop + "!!", "Toast burns in a hot kitchen.", "Toast needs salt.", "Rye toast."]
    more = [
        f"Plain {w} here." for w in ("bread", "cheese", "soup", "tea", "jam", "rice", "milk", "eggs", "corn", "figs")
    ]
    table = find_themes(ranked(top + FILLER + more), top_k=6)
    assert table.top_size == 6 and table.top_distinct == 4
    # every completion counts (the target reached the phrase three times), but the sentence's
    # phrases fold into one theme: near-duplicates hold them all
    assert len(table.themes) == 2
    lantern = next(t for t in table.themes if "lantern" in (t.phrase, *t.members) or "lantern" in t.phrase)
    assert lantern.n_top == 3 and {"copper", "lantern", "midnight"} <= {lantern.phrase, *lantern.members} | set(
        lantern.phrase.split()
    )
    toast = next(t for t in table.themes if t is not lantern)
    assert toast.phrase == "toast" and toast.n_top == 3


def test_a_phrase_as_common_in_the_rest_is_not_surprising():
    top = ["A walk in the market.", "The market was busy.", "Market day again."]
    rest = [f"Another market story number {w}." for w in ("one", "two", "three", "four", "five", "six")]
    table = find_themes(ranked(top + rest), top_k=3)
    assert fisher_greater(3, 3, 9, 9) == pytest.approx(1.0)
    assert "market" not in [t.phrase for t in table.themes]  # p = 1: not shown
    table = find_themes(ranked(top + rest[:1] + FILLER), top_k=3)
    market = next(t for t in table.themes if t.phrase == "market")
    assert market.n_top == 3 and market.n_rest == 2  # one FILLER line goes to the market too
    assert market.p_value == pytest.approx(fisher_greater(3, 3, 5, 3 + 1 + len(FILLER)))


def test_background_generations_give_a_second_contrast():
    top = ["Quillbright plans your week.", "Try Quillbright for lists.", "Plans and lists, by Quillbright."]
    background = ["Plans and lists keep a week calm.", "Lists help.", "Your week, planned."]
    table = find_themes(ranked(top + FILLER), top_k=3, background=background)
    quill = next(t for t in table.themes if t.phrase == "quillbright")
    assert quill.n_background == 0 and quill.p_background is not None and quill.p_background < 0.1
    assert table.background_size == 3
    lists = next((t for t in table.themes if "lists" in (t.phrase, *t.members)), None)
    if lists is not None and lists.phrase == "lists":
        assert lists.n_background == 2 and lists.p_background > quill.p_background


def test_no_theme_without_recurrence():
    table = find_themes(ranked(FILLER), top_k=4)
    assert table.themes == ()


def test_theme_matches_keywords_case_insensitively():
    theme = Theme(phrase="eiffel tower", members=(), n_top=3, n_rest=0, p_value=0.01, top_ranks=(1, 2, 3))
    assert theme_matches(theme, ["EIFFEL"]) and not theme_matches(theme, ["marseille"])


def test_unranked_records_are_never_top():
    records = ranked(["Marseille again.", "Marseille twice."]) + [
        with_gaps("u1", None, completion="Marseille unranked"),
        with_gaps("u2", None, completion="Marseille unranked too"),
    ]
    table = find_themes(records, top_k=10)
    assert table.top_size == 2 and table.rest_size == 2
