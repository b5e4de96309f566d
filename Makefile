# Everything a fresh clone needs: `make demo` and `make test` create .venv,
# install the pinned requirements and this package (editable) on first use.

PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PKG_STAMP := $(VENV)/.installed-package

.PHONY: install test lint unit demo bench gpu-check gpu-pack clean-venv

$(STAMP): requirements.txt requirements-dev.txt requirements-official.txt \
		requirements-deploy.txt
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -r requirements.txt -r requirements-dev.txt \
		-r requirements-deploy.txt
	$(VPY) -m pip install -q --no-deps -r requirements-official.txt
	touch $(STAMP)

# The package itself, editable, so that scripts and pretrained folders
# load from any working directory. A .venv that is a symbolic link is an
# environment shared with other checkouts: installing this one there would
# point the others at it, so it is left alone (recipes and tests use the
# checkout they run from either way).
$(PKG_STAMP): pyproject.toml $(STAMP)
	@if [ -L $(VENV) ]; then \
		echo "$(VENV) is a link to a shared environment: not installing" \
			"this checkout into it"; \
	else \
		$(VPY) -m pip install -q --no-deps -e . && touch $(PKG_STAMP); \
	fi

install: $(STAMP) $(PKG_STAMP)

lint: install
	$(VPY) -m ruff check .
	$(VPY) -m yamllint -s hparams

# Two tiers. `make unit`: the unit tests and the doctests of the package,
# the fast edit loop. `make test`: lint, then the whole suite (unit,
# integration and doctests: pyproject.toml's testpaths, which a bare
# `pytest` runs too); CI (.ci/run) runs `make test`.
UNIT_PATHS := speechbrain_ext tests/unit

unit: install
	$(VPY) -m pytest $(UNIT_PATHS)

test: lint
	$(VPY) -m pytest

demo: install
	$(VPY) recipes/demo.py

bench: install
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
