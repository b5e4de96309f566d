# Everything a fresh clone needs: `make demo` and `make test` create .venv
# and install the pinned requirements on first use.

PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint unit demo bench gpu-check gpu-pack clean-venv

$(STAMP): requirements.txt requirements-dev.txt requirements-official.txt
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	$(VPY) -m pip install -q --no-deps -r requirements-official.txt
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(VPY) -m ruff check .
	$(VPY) -m yamllint -s hparams

unit: $(STAMP)
	$(VPY) -m pytest

test: lint unit

demo: $(STAMP)
	$(VPY) recipes/demo.py

bench: $(STAMP)
	$(VPY) tests/benchmarks/bench_lobe.py

# GPU readiness check (tests/gpu/gpu_check.py); not part of `make test`.
# Without a CUDA device it prints one line and exits 0. Options through
# GPU_CHECK_OUT (summary folder) and MR_RAWNET_SHARED (shared folder), or
# GPU_CHECK_ARGS (e.g. "--device cpu --smoke"). It uses .venv when there is
# one, else python3 (a bare GPU machine: see tests/gpu/on_device.sh).
GPU_PY = $(if $(wildcard $(VPY)),$(VPY),python3)
gpu-check:
	$(GPU_PY) tests/gpu/gpu_check.py $(GPU_CHECK_ARGS)

# Packs .gpu/ (slimmed shared folder + wheels) for a bare GPU machine.
gpu-pack: $(STAMP)
	$(VPY) tests/gpu/pack_for_device.py

clean-venv:
	rm -rf $(VENV)
