# Every target installs what it needs first, so each works on a fresh machine.
VENV ?= .venv
PYTHON ?= python3
DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export DAGSTER_HOME

.PHONY: install demo test test-services ui validate dagster-home bench scale-out

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -c requirements.lock -e '.[test]'
	touch $@

dagster-home:
	mkdir -p $(DAGSTER_HOME)
	# Refreshed when the repository's file is newer (its pools and limits are what the guarantees rest on).
	cp -u dagster.yaml $(DAGSTER_HOME)/dagster.yaml

demo: install dagster-home
	$(VENV)/bin/export-pipelines demo

# The delivery tests start private sshd and vsftpd instances; Debian's packages provide them, and
# gnupg the gpg that encrypts files (and decrypts them in the tests); the UI tests drive Debian's
# chromium with Playwright (no browser download); zstd is the tool that reads .zst files back in the tests.
# Without root they cannot be installed: those tests then skip (and fail under CI=true).
test-services:
	@if [ ! -x /usr/sbin/sshd ] || [ ! -x /usr/sbin/vsftpd ] || [ ! -x /usr/bin/gpg ] || [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/zstd ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server vsftpd gnupg chromium zstd >/dev/null; \
	  else echo "openssh-server/vsftpd/gnupg/chromium/zstd missing and not root: delivery, UI and zstd tests will skip"; fi; \
	fi

test: install test-services
	$(VENV)/bin/python -m pytest

ui: install dagster-home
	$(VENV)/bin/dagster dev -w workspace.yaml

# The production profile on this machine (docs/scale-out.md): PostgreSQL instance storage, queued
# runs, every step on one of two Celery workers over Redis. Its own DAGSTER_HOME and database;
# the source is the demo database `make demo` built, unless EXPORT_SOURCE_URL names another.
SCALE_OUT_HOME ?= $(CURDIR)/.dagster_home_scale_out
SCALE_OUT_DB ?= dagster_scale_out
scale-out: install
	mkdir -p $(SCALE_OUT_HOME)
	cp -u deploy/dagster.yaml $(SCALE_OUT_HOME)/dagster.yaml
	$(VENV)/bin/python -c "import psycopg; c = psycopg.connect('postgresql://postgres@127.0.0.1:5432/postgres', autocommit=True); \
	  c.execute('SELECT 1 FROM pg_database WHERE datname = %s', ['$(SCALE_OUT_DB)']).fetchone() or c.execute('CREATE DATABASE $(SCALE_OUT_DB)')"
	DAGSTER_HOME=$(SCALE_OUT_HOME) \
	  DAGSTER_POSTGRES_URL=$${DAGSTER_POSTGRES_URL:-postgresql+psycopg2://postgres@127.0.0.1:5432/$(SCALE_OUT_DB)} \
	  EXPORT_EXECUTOR=celery \
	  EXPORT_CELERY_BROKER_URL=$${EXPORT_CELERY_BROKER_URL:-redis://127.0.0.1:6379/0} \
	  EXPORT_CELERY_BACKEND_URL=$${EXPORT_CELERY_BACKEND_URL:-redis://127.0.0.1:6379/0} \
	  EXPORT_SOURCE_URL=$${EXPORT_SOURCE_URL:-sqlite:///$(DAGSTER_HOME)/demo/loyalty.sqlite} \
	  VENV=$(VENV) deploy/scale_out.sh

validate: install
	$(VENV)/bin/export-pipelines validate

# Performance against psql, sqlite3, pandas and OpenSSH (README: Performance); minutes, not part of `make test`.
BENCH_ARGS ?= --rows 1000000 5000000 --repeat 3
bench: install test-services
	$(VENV)/bin/python -m pip install -q -c requirements.lock -e '.[test,bench]'
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)
	$(VENV)/bin/python bench/dagster_run.py
	$(VENV)/bin/python bench/sftp_upload.py --mb 500
