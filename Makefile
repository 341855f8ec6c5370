# Every target installs what it needs first, so each works on a fresh machine.
VENV ?= .venv
PYTHON ?= python3
DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export DAGSTER_HOME

.PHONY: install demo test ui validate dagster-home

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -c requirements.lock -e '.[test]'
	touch $@

dagster-home:
	mkdir -p $(DAGSTER_HOME)
	test -f $(DAGSTER_HOME)/dagster.yaml || cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

demo: install dagster-home
	$(VENV)/bin/export-pipelines demo

test: install
	$(VENV)/bin/python -m pytest

ui: install dagster-home
	$(VENV)/bin/dagster dev -w workspace.yaml

validate: install
	$(VENV)/bin/export-pipelines validate
