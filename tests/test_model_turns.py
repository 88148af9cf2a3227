"""``ModelTurns``: a model run and the decoder's pieces of work never overlap where the models
fill every core, runs go first, nothing waits where they do not, and nothing waits for a
live source's next frame."""

import threading
import time

import numpy as np
import pytest

from posepipe.video.runner import run_video
from posepipe.video.sources import Frame, FrameSource
from posepipe.video.tracking import ModelTurns, PoseTracker
from tests.conftest import sample_image

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


class _SlowSource(FrameSource):
    """Blank frames, each a while in coming, as from a camera (``live``) or not."""

    name, fps = "slow", 10.0

    def __init__(self, live: bool, frames: int = 4, wait_s: float = 0.3):
        self.live, self.frames, self.wait_s = live, frames, wait_s

    def __iter__(self):
        for index in range(self.frames):
            time.sleep(self.wait_s)
            yield Frame(index, index * 100.0, np.zeros((240, 320, 3), np.uint8))


@pytest.mark.parametrize("live", [True, False])
def test_runs_wait_for_the_decoder_only_where_reading_is_work(model_paths, live):
    """A blank picture has nobody in it, so the tracker runs the detector on every frame. From
    a file (not live) each run may wait for the decoder's next frame; from a camera or a stream
    it must not: the next frame is still being captured."""
    source = _SlowSource(live)
    with PoseTracker() as tracker:
        assert tracker.uses_every_core()  # the models' default threads: turns where not live
        stats = run_video(source, tracker, [])
    assert stats.frames == source.frames
    waited = stats.stages["detector"]  # the detector's runs, and whatever they waited for
    if live:
        assert waited < source.wait_s, f"the runs waited {waited:.2f} s for frames being captured"
    else:
        assert waited >= source.wait_s, "runs never waited for the decoder: turns were not taken"


@pytest.mark.parametrize("active", [True, False])
def test_after_frame_runs_is_called_as_a_frames_last_run_ends(active):
    turns = ModelTurns(active=active)
    ended = []
    turns.after_frame_runs = lambda: ended.append(True)
    with turns.model_run(last_of_frame=False):  # the detector's, before the landmark model's
        pass
    assert not ended
    with turns.model_run():
        assert not ended
    assert ended == [True]
    with pytest.raises(RuntimeError):
        with turns.model_run():
            raise RuntimeError("the model failed")
    assert ended == [True, True]


class _CountedSource(FrameSource):
    """The same picture again and again, from a file (not live), each read set as an event."""

    name, fps, live = "counted", 10.0, False

    def __init__(self, picture: np.ndarray, frames: int):
        self.picture, self.frames = picture, frames
        self.read = [threading.Event() for _ in range(frames)]
        self.runs_ended_at_read: list[int] = []
        self.runs_ended = 0

    def __iter__(self):
        for index in range(self.frames):
            self.runs_ended_at_read.append(self.runs_ended)
            self.read[index].set()
            yield Frame(index, index * 100.0, self.picture)


def test_the_decoder_reads_ahead_as_soon_as_a_frames_runs_end(model_paths, monkeypatch):
    """The decoder's next piece starts as a frame's last model run ends, beside the work after
    it (decoding the landmarks, cutting the next crop), not once the loop takes the next frame;
    and it never runs more than ``prefetch`` frames ahead of the runs."""
    prefetch, source = 2, _CountedSource(sample_image("grace_hopper.jpg"), 6)
    read_during_the_work_after_the_runs = []
    with PoseTracker() as tracker:
        landmarks_of = tracker._update  # what follows the landmark model's run

        def work_after_the_runs(*args, **kwargs):
            frame = source.runs_ended
            source.runs_ended += 1
            if frame + prefetch < source.frames:  # the work waits for the decoder's read
                read_during_the_work_after_the_runs.append(source.read[frame + prefetch].wait(WAIT_S))
            return landmarks_of(*args, **kwargs)

        monkeypatch.setattr(tracker, "_update", work_after_the_runs)
        stats = run_video(source, tracker, [], prefetch=prefetch)
    assert stats.frames == source.frames
    assert source.runs_ended == source.frames, "the person was not tracked on every frame"
    assert read_during_the_work_after_the_runs == [True] * (source.frames - prefetch)
    for frame, ended in enumerate(source.runs_ended_at_read):
        assert frame < prefetch + ended + 1, f"frame {frame} was read with only {ended} frames' runs ended"
