#!/usr/bin/env bash
# Install everything the test suite needs, then run it.
#
# Debian or Ubuntu: the OS packages come from apt (sudo is used when not
# root): Chromium for the browser tests, rsync and OpenSSH for sync, the
# linter ShellCheck and systemd for the install script and the service unit.
# Python packages come from the project's [dev] extra. Extra arguments go
# to pytest, e.g. `bash scripts/run-tests.sh -k tub`.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    echo "installing OS packages (chromium rsync openssh shellcheck systemd tmux python3-venv)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        chromium rsync openssh-server openssh-client shellcheck systemd tmux python3-venv >/dev/null
else
    echo "apt-get not found: install chromium, rsync, openssh, shellcheck and systemd yourself" >&2
fi

# A Python that the OS manages (PEP 668, as on Debian 12 and Ubuntu 24.04)
# refuses pip installs, so the tests then run in a virtual environment.
PYTHON=python3
if [ -z "${VIRTUAL_ENV:-}" ] && python3 -c 'import os, sys, sysconfig
sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'; then
    echo "this Python is managed by the OS: using the virtual environment .venv"
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv .venv
    fi
    PYTHON=.venv/bin/python
fi

echo "installing autodrive with its test dependencies"
"$PYTHON" -m pip install -q -e '.[dev]'

exec "$PYTHON" -m pytest "$@"
