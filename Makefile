# Every target sets itself up: a fresh clone needs only python3 (>= 3.11) and make.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EXTRAS ?= dev

AC     := $(VENV)/bin/agecompact
DEMO_EPOCHS ?= 30

.PHONY: install test lint bench bench-quick demo clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

## test: the whole suite on CPU (tests that need ../shared skip when it is absent)
test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check agecompact tests benchmarks

## demo: the main job end to end, offline, on generated WIKI-layout data (a few minutes on a CPU):
## fetch demo -> filter -> preprocess -> train -> eval -> bench table
demo: $(STAMP)
	$(AC) fetch demo --dest demo --quiet
	$(AC) filter --db wiki --root demo --out data/demo_filtered.csv
	$(AC) preprocess --db wiki --root demo --csv data/demo_filtered.csv --out data/demo.npz --quiet
	$(AC) train --db data/demo.npz --model ssrnet --epochs $(DEMO_EPOCHS) --out runs/demo-ssrnet --exist-ok
	$(AC) eval --model runs/demo-ssrnet --db data/demo.npz --split val --plot runs/demo-ssrnet/error_by_age.png
	$(AC) bench table --runs runs/demo-ssrnet --markdown runs/demo-ssrnet/table.md

## bench: the scripts behind the README's Performance section (JSON into benchmarks/results/)
bench: $(STAMP)
	$(PY) benchmarks/cli_startup.py
	$(PY) benchmarks/inference_backends.py
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/conv_formulations.py
	$(PY) benchmarks/predict_latency.py
	$(PY) benchmarks/preprocess_throughput.py

bench-quick: $(STAMP)
	$(PY) benchmarks/train_throughput.py --quick
	$(AC) bench table

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info demo data/demo.npz data/demo.npz.json \
	       data/demo_filtered.* runs/demo-ssrnet
