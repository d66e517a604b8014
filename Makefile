# Gantry: `make run` starts everything with a demo; `make test` installs what it needs and runs the suite.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PG_URL ?= postgres://postgres@127.0.0.1:5432/gantry
REDIS_TEST_URL ?= redis://127.0.0.1:6379/15

.PHONY: run serve serve-deps screenshots test test-fast test-sqlite test-postgres lint system-deps system-deps-test test-accounts apt-deps clean

$(VENV)/.installed: requirements.txt
	@$(PYTHON) --version >/dev/null 2>&1 || { echo "Gantry needs Python 3.11 ($(PYTHON) not found); set PYTHON=/path/to/python3.11"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt cli/pyproject.toml
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# Debian packages the demo needs: OpenSSH's server (real SSH hosts) and git;
# the tests also need Chromium (Playwright cannot download its own browser here)
# and HAProxy (the zero-downtime test puts it in front of three hosts), bubblewrap (a builder's sandbox)
# and cron (the builder isolation test tries to leave a crontab behind).
system-deps:
	@$(MAKE) --no-print-directory apt-deps PACKAGES="git:git openssh-server:sshd"

# Your own Gantry needs git (the repositories' mirrors); sshd is only for the demo's hosts.
serve-deps:
	@$(MAKE) --no-print-directory apt-deps PACKAGES="git:git"

system-deps-test: test-accounts tests/support/oidc/node_modules/.installed
	@$(MAKE) --no-print-directory apt-deps PACKAGES="git:git openssh-server:sshd chromium:chromium haproxy:haproxy bubblewrap:bwrap cron:crontab systemd:systemd-analyze prometheus:prometheus"

# The sign-in tests' OpenID Connect provider (oidc-provider, run by node), as its lock file pins it.
tests/support/oidc/node_modules/.installed: tests/support/oidc/package-lock.json
	@$(MAKE) --no-print-directory apt-deps PACKAGES="nodejs:node npm:npm"
	npm ci --prefix tests/support/oidc --no-audit --no-fund --loglevel=error
	touch $@

# The builder tests log in as an account that is not root (a build must never run as the machine's root).
test-accounts:
	@id gantry-build >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then useradd --create-home --shell /bin/bash --password '*' gantry-build; \
	  else echo "the tests need a user gantry-build (a builder's account): run  sudo useradd --create-home --shell /bin/bash --password '*' gantry-build (a locked account cannot log in over SSH)"; exit 1; fi; }

# PACKAGES: package:command pairs; installs the packages whose command is missing.
apt-deps:
	@missing=""; \
	for pair in $(PACKAGES); do \
	  pkg=$${pair%%:*}; cmd=$${pair##*:}; \
	  PATH="$$PATH:/usr/sbin:/sbin" command -v $$cmd >/dev/null || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing$$missing with apt-get"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	  else \
	    echo "Gantry needs the Debian package(s)$$missing: run  sudo apt-get install$$missing  and try again"; exit 1; \
	  fi; \
	fi

run: $(VENV)/.installed system-deps
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo_setup
	$(VENV)/bin/honcho start -f Procfile

# A Gantry of your own on this machine: the same processes as `make run`, without the demo (no demo hosts,
# repository, service or password). Settings come from the environment or .env (see .env.example).
serve: $(VENV)/.installed serve-deps
	$(PY) manage.py migrate --noinput
	$(PY) manage.py serve_check
	$(VENV)/bin/honcho start -f Procfile.serve

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	GANTRY_VAR_DIR=$$(mktemp -d) $(VENV)/bin/mypy deployer dashboards cli/gantry_cli

# The suite runs twice: SQLite with the embedded broker, then PostgreSQL with Redis (what touches SQL,
# transactions, locking or the broker; tests marked one_backend run in the SQLite half only).
test: lint test-sqlite test-postgres

test-sqlite: $(VENV)/.installed-dev system-deps-test
	env -u DATABASE_URL -u REDIS_URL $(PY) -m pytest --durations=15

# The README's pictures, from the demo (run it beside `make run`).
screenshots: $(VENV)/.installed-dev
	$(PY) manage.py demo_screenshots --out docs

# The everyday loop: every test that needs no worker, sshd host, browser or Prometheus, on SQLite.
test-fast: $(VENV)/.installed-dev
	env -u DATABASE_URL -u REDIS_URL $(PY) -m pytest -m "not heavy" -q --durations=10

test-postgres: $(VENV)/.installed-dev system-deps-test
	@$(PY) -c "import socket; socket.create_connection(('127.0.0.1', 5432), 2); socket.create_connection(('127.0.0.1', 6379), 2)" \
	  || { echo "PostgreSQL (5432) and Redis (6379) must run on this machine for this half of the suite; start them, or run make test-sqlite"; exit 1; }
	DATABASE_URL=$(PG_URL) REDIS_URL=$(REDIS_TEST_URL) $(PY) -m pytest --durations=15

clean:
	rm -rf var/ $(VENV)
