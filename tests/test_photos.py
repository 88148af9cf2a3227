"""Photos side by side (posepipe.photos): one one-thread landmarker per core gives the
results one landmarker gives, in the order of the photos."""

import time

import numpy as np

from posepipe.models.cpu import cpu_info
from posepipe.photos import PhotoRunner, landmarker_count
from posepipe.pipeline import PoseLandmarker, PoseLandmarkerOptions
from tests.conftest import sample_image


def test_one_landmarker_per_core_unless_threads_are_given():
    cores = cpu_info().usable_cores
    assert landmarker_count(PoseLandmarkerOptions(), 100) == cores
    assert landmarker_count(PoseLandmarkerOptions(), 1) == 1  # one photo: nothing to share
    assert landmarker_count(PoseLandmarkerOptions(threads=2), 100) == 1  # the threads asked for, as asked


def test_side_by_side_poses_are_one_landmarkers_poses_in_order():
    photos = [sample_image("grace_hopper.jpg"), sample_image("astronaut.png")] * 3
    photos[3] = np.ascontiguousarray(photos[3][::-1])  # upside down: another answer in the middle
    with PoseLandmarker(threads=1) as landmarker:
        expected = [landmarker.detect(p) for p in photos]
    with PhotoRunner(PoseLandmarkerOptions(), len(photos)) as runner:
        assert runner.count == min(cpu_info().usable_cores, len(photos))
        got = list(runner.map(lambda lm, photo: lm.detect(photo), photos))
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert len(a) == len(b)
        # the same models on the same thread count: equal to well under a thousandth of a pixel
        assert np.abs(a.landmarks - b.landmarks).max(initial=0) < 1e-3


def test_results_come_in_job_order_whatever_finishes_first():
    jobs = list(range(12))

    def slow_then_fast(landmarker, job):
        time.sleep(0.02 if job % 3 == 0 else 0.0)  # some jobs finish after later ones
        return job, landmarker

    with PhotoRunner(PoseLandmarkerOptions(), len(jobs)) as runner:
        results = list(runner.map(slow_then_fast, jobs))
    assert [job for job, _ in results] == jobs
