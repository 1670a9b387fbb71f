#!/usr/bin/env bash
# Install everything the suite needs, then run it: Debian's NUT (upsd, dummy-ups, upsmon), socat for a
# serial line without hardware, systemd-analyze, Node.js for the JavaScript example, iproute2 for the peer
# network test's namespaces, Mosquitto for the MQTT tests, Apache's binary and modules (no service) for the
# v1 migration's proxy, Chromium (driven by playwright, which never downloads a
# browser here) for the dashboard's tests; a virtualenv with nutbridge and its test tools;
# then ruff, mypy and pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for pkg in nut-server nut-client socat systemd mosquitto chromium fonts-dejavu-core apache2-bin; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# Node.js runs the JavaScript client example (Debian 12's nodejs is 18, with fetch).
command -v node >/dev/null || missing+=(nodejs)
command -v openssl >/dev/null || missing+=(openssl)  # the tests' TLS certificates
command -v ip >/dev/null || missing+=(iproute2)  # the peer network's namespaces, veth pairs and bridge
# Debian's own python3 makes venvs only with python3-venv (ensurepip); a python3 from elsewhere brings its own.
if [ ! -x .venv/bin/python ] && ! python3 -c 'import ensurepip' 2>/dev/null; then
    missing+=(python3-venv)
fi
if ((${#missing[@]})); then
    echo "installing Debian packages: ${missing[*]}"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Debian starts the broker it just installed; the tests start their own on loopback ports and need no other.
    if [[ " ${missing[*]} " == *" mosquitto "* ]] && command -v systemctl >/dev/null &&
        systemctl is-active --quiet mosquitto 2>/dev/null; then
        $sudo systemctl disable --now mosquitto >/dev/null 2>&1 || true
    fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest "$@"
