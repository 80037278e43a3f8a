"""looping.py's rules on their own: the token budget, what counts as a loop, and where a decode is cut."""

from __future__ import annotations

import pytest

from service.engines.looping import LOOP_TOKENS, MAX_PERIOD, bounded, loops, token_budget

EOT = 50256
WORD, STOP, TS = 1573, 13, 50363  # ' word', '.', a timestamp (>= EOT: never text)


def test_the_budget_grows_with_the_audio_and_keeps_whispers_own_limit_for_a_full_window():
    assert token_budget(2.8, 224) == 60  # 28 + 32
    assert token_budget(0.0, 224) == 32
    assert token_budget(30.0, 224) == 224 and token_budget(19.2, 224) == 224


@pytest.mark.parametrize("period", [1, 2, 5, MAX_PERIOD])
def test_one_ngram_repeated_is_a_loop(period):
    gram = list(range(100, 100 + period))
    repeated = gram * (max(LOOP_TOKENS, 3 * period) // period + 1)
    assert loops([7, 8, 9, *repeated])
    assert not loops([7, 8, 9, *repeated][:-2] + [5, 6])  # the tail no longer repeats


def test_speech_is_not_a_loop():
    sentence = list(range(200, 260))  # 60 different tokens
    assert not loops(sentence)
    assert not loops([WORD] * (LOOP_TOKENS - 1))  # "no, no, no" is speech up to a point
    assert not loops(list(range(300, 300 + MAX_PERIOD + 1)) * 3)  # 13-grams: past MAX_PERIOD


def test_a_decode_is_cut_where_its_text_first_loops_and_at_its_budget():
    looping = [TS, *[WORD] * 100, TS]
    tokens, looped = bounded(looping, EOT, budget=224)
    assert looped and tokens == [TS, *[WORD] * LOOP_TOKENS]
    assert loops([t for t in tokens if t < EOT]) and not loops([t for t in tokens[:-1] if t < EOT])
    speech = [TS, *range(200, 290), STOP, TS]
    assert bounded(speech, EOT, budget=224) == (speech, False)
    assert bounded(speech, EOT, budget=40) == (speech[:40], False)
