# kdsurrogate: knowledge distillation without the teacher's data.
# `make demo` and `make test` set everything up first (via `make install`).

PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
FMNIST  := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
SCALE   ?= 1
export PYTHONUNBUFFERED := 1

.PHONY: help install test lint demo pipeline shards teacher students report bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/kdgen: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/kdgen

$(FMNIST):
	@if command -v apt-get >/dev/null 2>&1; then \
	  (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	   (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)) ; \
	else echo "note: no apt-get; kdtrain falls back to torchvision's Fashion-MNIST download"; fi

install: $(BIN)/kdgen $(FMNIST)  ## create .venv with everything, and Debian's Fashion-MNIST files

test: install  ## run the test suite
	$(BIN)/python -m pytest -q

lint: install  ## ruff
	$(BIN)/ruff check kdgen kdtrain tests bench

demo: install  ## the whole pipeline at a small scale (under 10 minutes on 2 cores)
	$(MAKE) --no-print-directory pipeline PROFILE=demo

bench: install  ## benchmarks (figures go to docs/BENCHMARKS.md by hand)
	$(BIN)/python bench/bench_generators.py

clean:  ## remove generated data and runs (keeps .venv)
	rm -rf data/*.tar data/*.json data/*.png runs
