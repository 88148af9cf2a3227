"""An imperceptible change to a frame, the same in every benchmark that asks how much a tracked
result depends on one (``tracking_sensitivity.py``, ``real_scripts.py --noise-runs``). Plain
numpy, so MediaPipe's environment runs this file's text too."""

import numpy as np


def perturbed(frame, seed):
    """``frame`` with one grey level added or taken, at random, on 1% of its pixels (all their
    channels); seed 0 gives the frame unchanged."""
    if seed == 0:
        return frame
    rng = np.random.default_rng(seed)
    out = frame.copy()
    chosen = rng.random(out.shape[:2]) < 0.01
    step = rng.choice([-1, 1], size=(int(chosen.sum()), 1))
    out[chosen] = np.clip(out[chosen].astype(int) + step, 0, 255).astype(np.uint8)
    return out
