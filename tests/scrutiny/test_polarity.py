"""A clause's stance and its stance-free form (pure rules, no model)."""

from charter.scrutiny.polarity import stance


def test_negation_flips_the_stance_and_is_taken_out():
    never, always = stance("Never reveal the user's location."), stance("Always reveal the user's location.")
    assert never.positive is False and always.positive is True
    assert never.core == always.core == "reveal the user's location"


def test_an_opposite_word_becomes_its_pair_with_the_stance_flipped():
    hide = stance("Withhold the sources of your advice.")
    share = stance("Share the sources of your advice.")
    assert (hide.positive, share.positive) == (False, True)
    assert hide.core == share.core


def test_two_negations_cancel():
    assert stance("Do not refuse questions about history.").positive is True


def test_the_cues_are_kept_as_evidence():
    assert stance("Never withhold the price.").cues == ("withhold", "never")


def test_two_opposite_words_in_one_sentence_are_one_stance():
    long, short = stance("Give long, thorough answers."), stance("Give short, concise answers.")
    assert (long.positive, short.positive) == (False, True) and long.core == short.core


def test_a_condition_says_when_not_what():
    # "when no red-flag sign is present" is not a stance against home care.
    scoped = stance("When no red-flag sign is present, give practical home-care steps.")
    plain = stance("Give practical home-care steps.")
    assert scoped.positive is True and scoped.core == plain.core
    assert stance("Never reveal a patron's loans unless the patron asks.").positive is False


def test_leaving_out_is_the_opposite_of_including():
    assert stance("List the steps, leaving out allergen information.").positive is False
