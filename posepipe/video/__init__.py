"""Video: sources (``sources``), the tracker (``tracking``) and its smoothing (``smoothing``),
the run loop and the zero-lag passes (``runner``), and what is written (``outputs``,
``exports``, ``overlay``). The command line, and any other front door, calls
:func:`~posepipe.video.runner.track_video` with a :class:`~posepipe.video.outputs.VideoOutputs`."""
