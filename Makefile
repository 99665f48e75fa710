PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test lint bench demo synth-benchmark clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

lint: $(STAMP)
	$(PY) -m ruff check .

# two heads train at a time; a heavy (heatmap) and a light head in each slot keep them even
DEMO := $(addprefix configs/demo/,ipr_resnet10t_bf16-1xb16-15e_synthcoco-64x48.py \
	regression-l1_resnet10t_bf16-1xb16-15e_synthcoco-64x48.py \
	samplingargmax-triangular_resnet10t_bf16-1xb16-15e_synthcoco-64x48.py \
	rle_resnet10t_bf16-1xb16-15e_synthcoco-64x48.py)

demo: $(STAMP)
	$(PY) tools/compare.py $(DEMO) --work-root work_dirs/demo --jobs 2 --calibrate

# the synthetic accuracy benchmark (1-1.5 h on 2 CPU cores; resumes where it stopped)
synth-benchmark: $(STAMP)
	$(PY) tools/compare.py configs/benchmark/synthcoco --work-root work_dirs/bench_synthcoco --jobs 2
	$(PY) tools/compare.py configs/benchmark/synthh36m --work-root work_dirs/bench_synthh36m

bench: $(STAMP)
	$(PY) benchmarks/bench_decoders.py
	$(PY) benchmarks/bench_rle_loss.py
	$(PY) benchmarks/bench_data.py
	$(PY) benchmarks/bench_heads.py
	$(PY) benchmarks/bench_compare.py
	$(PY) benchmarks/bench_optimizer.py
	$(PY) benchmarks/bench_inference.py
	$(PY) benchmarks/bench_training.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
