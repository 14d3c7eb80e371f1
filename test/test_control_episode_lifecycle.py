"""The episode lifecycle: numbering, seeds, running / stopped (ROS-free)."""

import pytest

from action_images_ros.control.episode_lifecycle import EpisodeError, EpisodeLifecycle


def test_start_numbers_episodes_and_takes_the_next_seed_reset_repeats_it():
    lc = EpisodeLifecycle(first_seed=100)
    assert (lc.state.episode, lc.running) == (-1, False)
    assert lc.start().as_dict() == {"episode": 0, "seed": 100, "state": "running"}
    assert (lc.start().episode, lc.state.seed) == (1, 101)  # a running episode simply ends
    assert (lc.reset().episode, lc.state.seed, lc.running) == (2, 101, True)  # a retry: same seed
    assert lc.stop().as_dict() == {"episode": 2, "seed": 101, "state": "stopped"}
    assert (lc.start(seed=7).episode, lc.state.seed) == (3, 7)
    assert lc.start().seed == 8


def test_transitions_that_do_not_apply_say_why():
    lc = EpisodeLifecycle()
    with pytest.raises(EpisodeError, match="no episode has started"):
        lc.stop()
    with pytest.raises(EpisodeError, match="start one first"):
        lc.reset()
    lc.start()
    lc.stop()
    with pytest.raises(EpisodeError, match="episode 0 is not running"):
        lc.stop()
    with pytest.raises(EpisodeError, match="seed"):
        lc.start(seed=-1)
    with pytest.raises(ValueError):
        EpisodeLifecycle(first_seed=-3)


def test_announcement_text_round_trips_and_unknown_text_is_a_plain_new_trial():
    from action_images_ros.control.episode_lifecycle import EpisodeMark, mark_text, parse_mark

    assert mark_text(3, 100005) == "3 seed 100005" and mark_text(3, 0, running=False) == "3 stopped"
    assert parse_mark(" 3 seed 100005 ") == EpisodeMark(3, 100005, True)
    assert parse_mark("3 stopped") == EpisodeMark(3, None, False)
    assert parse_mark("-1 stopped") == EpisodeMark(-1, None, False)  # nothing started yet
    assert parse_mark("trial after lunch") == EpisodeMark(None, None, True)
