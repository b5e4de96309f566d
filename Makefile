# Everything a fresh clone needs: `make demo` and `make test` create .venv
# and install the pinned requirements on first use.

PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint unit demo bench clean-venv

$(STAMP): requirements.txt requirements-dev.txt requirements-official.txt \
		requirements-deploy.txt
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -r requirements.txt -r requirements-dev.txt \
		-r requirements-deploy.txt
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

clean-venv:
	rm -rf $(VENV)
