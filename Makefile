# JIM — the two commands that matter:
#
#   make demo   set up everything, then run the demo on http://127.0.0.1:8000
#   make test   set up everything, then run every check CI runs
#
# And for trying JIM against Active Directory: `make samba-dc` runs a Samba AD domain
# controller (docs/connectors/active-directory.md, "Trying it against Samba").
#
# "Set up everything" on a fresh Debian machine as root: the system packages the
# tests need (slapd, ldap-utils, postgresql, chromium, samba; nothing is installed when
# they are present), a virtualenv in .venv, and requirements.txt in it (skipped
# while .venv/.requirements-installed is newer than requirements.txt).
#
# The demo, once set up (demo/run.py): SQLite in the project folder, an HR file of
# 1,000 people and the demo's own slapd (a CSV file when slapd cannot start) in .demo/,
# the first sync cycle, then the web server and the django-q2 workers until Ctrl-C,
# which stops them all.
#
# Knobs: make test PYTEST_ARGS="-k foo"   extra pytest arguments
#        make test PYTEST_WORKERS=0       run the tests serially (default: 2 workers)
#        make demo DEMO_ADDRESS=127.0.0.1:8765   where the demo's web server listens
#        make samba-dc SAMBA_ADDRESS=127.0.0.2   where the domain controller listens

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
REQUIREMENTS_STAMP := $(VENV)/.requirements-installed
PYTEST_ARGS ?=
PYTEST_WORKERS ?= 2
DEMO_ADDRESS ?= 127.0.0.1:8000
SAMBA_ADDRESS ?= 127.0.0.1

.PHONY: help setup system-packages venv test check pytest demo demo-run samba-dc lint fmt

help:
	@echo "make demo   set up, then run the demo on http://$(DEMO_ADDRESS)"
	@echo "make test   set up, then: manage.py check, makemigrations --check, ruff check, lint-imports (layers), mypy, pytest"
	@echo "make samba-dc   a Samba AD domain controller on $(SAMBA_ADDRESS) (389/636) to try JIM against AD, until Ctrl-C"
	@echo "make lint   ruff check and ruff format --check"
	@echo "make fmt    ruff format and ruff check --fix"

## Set-up ----------------------------------------------------------------------

setup: system-packages venv

# Installs only what is missing (a machine that has everything installs nothing);
# runs `apt-get update` first when the package lists are empty, and once more when
# an install fails on stale lists.
system-packages:
	@missing=""; \
	[ -x /usr/sbin/slapd ] || missing="$$missing slapd"; \
	command -v ldapsearch >/dev/null 2>&1 || missing="$$missing ldap-utils"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	[ -x /usr/sbin/samba ] && [ -x /usr/bin/samba-tool ] || missing="$$missing samba"; \
	$(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1 || missing="$$missing python3 python3-venv"; \
	[ -z "$$missing" ] && exit 0; \
	sudo=""; \
	if [ "$$(id -u)" -ne 0 ]; then \
		command -v sudo >/dev/null 2>&1 || { echo "Missing system packages:$$missing; install them as root: apt-get install$$missing" >&2; exit 1; }; \
		sudo=sudo; \
	fi; \
	echo "Installing system packages:$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	if ! ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then $$sudo apt-get update; fi; \
	$$sudo apt-get install -y $$missing \
		|| { $$sudo apt-get update && $$sudo apt-get install -y $$missing; }

venv: $(REQUIREMENTS_STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(REQUIREMENTS_STAMP): requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

## Tests -----------------------------------------------------------------------

test: setup check pytest

# The checks that need no database server (manage.py uses SQLite by default). They
# load the production settings, which refuse to start without keys: throw-away ones,
# new at each run, that never encrypt anything.
NEW_KEY = $(shell $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')
CHECK_ENV = env SECRET_KEY=$(NEW_KEY) JIM_ENCRYPTION_KEY=$(NEW_KEY)

check: venv
	$(CHECK_ENV) $(BIN)/python manage.py check
	$(CHECK_ENV) $(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(CHECK_ENV) $(BIN)/mypy

# pytest finds or starts PostgreSQL, slapd and the Samba DC itself (docs/testing.md), and
# names the 15 slowest tests at the end (the suite must stay well under 15 minutes).
# Exit status 5 means no tests were collected: said plainly, and not a failure.
pytest: setup
	@workers=(); [ "$(PYTEST_WORKERS)" = 0 ] || workers=(-n $(PYTEST_WORKERS) --dist load); \
	echo "$(BIN)/pytest $${workers[*]} $(PYTEST_ARGS)"; \
	status=0; $(BIN)/pytest "$${workers[@]}" --durations=15 $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then \
		echo "make test: pytest collected no tests (exit status 5) — nothing to run, treated as success."; \
		exit 0; \
	fi; \
	exit $$status

## Demo ------------------------------------------------------------------------

# The demo runs on SQLite in the project folder, whatever DATABASE_URL says.
DEMO_ENV := env -u DATABASE_URL

demo: setup demo-run

# Migrates, writes .demo/hr.csv, starts slapd, applies demo/ldap.yaml (or demo/csv.yaml),
# prints the admin's password, runs the first cycle, then serves until Ctrl-C.
demo-run: venv
	$(DEMO_ENV) $(BIN)/python -m demo --address $(DEMO_ADDRESS)

## Active Directory -----------------------------------------------------------

# A Samba AD domain controller (domain EXAMPLE.ORG) to try JIM against: provisioned into
# .demo/samba the first time (about 10 s), then started on its data until Ctrl-C. It
# prints where it listens and JIM's service account; the passwords stay in
# .demo/samba/dc.json (mode 0600). Samba needs root and the address's ports 389 and 636.
samba-dc: system-packages venv
	$(BIN)/python -m jim_project.devservers.samba .demo/samba --host $(SAMBA_ADDRESS)

## Code style ------------------------------------------------------------------

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
