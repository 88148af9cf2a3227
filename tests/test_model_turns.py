"""``ModelTurns``: a model run and the decoder's pieces of work never overlap where the models
fill every core, runs go first, and nothing waits where they do not."""

import threading
import time

from posepipe.video.tracking import ModelTurns

WAIT_S = 5.0  # bound on every wait: a broken turn fails the test instead of hanging it
SETTLE_S = 0.2  # long enough for a thread that could go on to do so


def _in_thread(target) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_a_run_waits_for_the_piece_under_way_and_then_goes_first():
    turns = ModelTurns(active=True)
    piece_started, piece_may_end, run_started = threading.Event(), threading.Event(), threading.Event()
    second_piece_started = threading.Event()

    def piece():
        with turns.helper_work():
            piece_started.set()
            piece_may_end.wait(WAIT_S)

    def run():
        with turns.model_run():
            run_started.set()
            time.sleep(SETTLE_S)  # a second piece must not start meanwhile

    def second_piece():
        with turns.helper_work():
            second_piece_started.set()

    first = _in_thread(piece)
    assert piece_started.wait(WAIT_S)
    model = _in_thread(run)
    assert not run_started.wait(SETTLE_S), "the run started while a piece was under way"
    later = _in_thread(second_piece)
    time.sleep(SETTLE_S)
    assert not second_piece_started.is_set(), "a piece started while a run was waiting"
    piece_may_end.set()
    assert run_started.wait(WAIT_S)
    assert not second_piece_started.is_set(), "a piece started during the run"
    model.join(WAIT_S)
    assert second_piece_started.wait(WAIT_S), "the waiting piece never started after the run"
    first.join(WAIT_S)
    later.join(WAIT_S)


def test_inactive_turns_never_wait():
    turns = ModelTurns(active=False)
    inside_run, piece_done = threading.Event(), threading.Event()

    def piece():
        with turns.helper_work():
            piece_done.set()

    with turns.model_run():
        inside_run.set()
        helper = _in_thread(piece)
        assert piece_done.wait(WAIT_S), "an inactive turn kept a piece waiting during a run"
    helper.join(WAIT_S)


def test_a_failed_run_gives_the_turn_back():
    turns = ModelTurns(active=True)
    try:
        with turns.model_run():
            raise RuntimeError("the model failed")
    except RuntimeError:
        pass
    piece_done = threading.Event()

    def piece():
        with turns.helper_work():
            piece_done.set()

    helper = _in_thread(piece)
    assert piece_done.wait(WAIT_S)
    helper.join(WAIT_S)
