"""LocalAgreement (service/api/realtime/agreement.py): deltas are append-only and, when the decodes of a
growing turn converge on a text, their concatenation is that text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from service.api.realtime.agreement import LocalAgreement

WORDS = st.sampled_from(["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "rain", "sun"])


def test_a_word_is_sent_once_two_decodes_agree_on_it():
    la = LocalAgreement()
    assert la.update("The weather") == ""
    assert la.update("The weather forecast") == "The weather"
    assert la.update("The weather forecast calls") == " forecast"
    assert la.finish("The weather forecast calls for rain.") == " calls for rain."


def test_case_and_punctuation_do_not_break_agreement():
    la = LocalAgreement()
    la.update("Hello, world")
    assert la.update("hello world again") == " ".join(["hello", "world"])


@given(
    text=st.lists(WORDS, min_size=1, max_size=25),
    cuts=st.lists(st.integers(0, 25), min_size=1, max_size=10),
    noise=st.lists(st.integers(0, 2), min_size=10, max_size=10),
)
@settings(max_examples=200, deadline=None)
def test_decodes_of_a_growing_turn_give_deltas_that_add_up_to_the_final_text(text, cuts, noise):
    """Each decode is the turn's text so far followed by up to two guessed words (audio cut mid-word) that
    the next decode does not repeat; the final decode is the whole text. Together the deltas are the final
    text, whatever was guessed on the way."""
    la, sent = LocalAgreement(), ""
    for i, (cut, guessed) in enumerate(zip(sorted(cuts), noise, strict=False)):
        guess = [f"guess{i}x{j}" for j in range(guessed)]
        sent += la.update(" ".join(text[:cut] + guess))
    sent += la.finish(" ".join(text))
    assert sent.split() == text
