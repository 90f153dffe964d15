# The README's commands. Everything runs inside .venv, created on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONUNBUFFERED := 1

.PHONY: demo test bench clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.installed  ## train the tiny model into runs/demo, evaluate tasks, prune circuits
	$(PY) -m launch.demo --workdir=runs/demo

test: $(VENV)/.installed  ## the CPU test suite
	$(PY) -m pytest -n 2 --dist loadfile

bench: $(VENV)/.installed  ## throughput and pruning-speed figures; the last line is JSON
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) runs *.egg-info
