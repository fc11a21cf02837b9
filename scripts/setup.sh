#!/usr/bin/env bash
# Set up a machine to run gossipha from this checkout: Debian packages (when root and
# apt-get exist), a virtual environment in .venv with gossipha and its test extra.
set -euo pipefail
cd "$(dirname "$0")/.."

# heartbeat and keepalived are the peers bench/failover.py and bench/resources.py measure
# gossipha beside (gossipha/lab/peers.py); Heartbeat's IPaddr agent needs net-tools.
# man-db: tests/unit/test_deb.py runs `man -w gossipha` on the installed package (and man-db
# brings groff, which tests/unit/test_manpage.py reads the page with). The Debian package's
# own build dependencies are installed by scripts/build-deb.sh.
DEBIAN_PACKAGES=(python3 python3-venv python3-pip nginx iproute2 iptables nftables systemd resource-agents prometheus prometheus-alertmanager heartbeat keepalived net-tools man-db)

if command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${DEBIAN_PACKAGES[@]}" >/dev/null
    else
        echo "setup: not root; skipping apt-get (needs: ${DEBIAN_PACKAGES[*]})" >&2
    fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test,bench]'

# git keeps no file modes but the executable bit: the tutorial's authkeys must be 600,
# exactly as the tutorial says (chmod 600 /etc/ha.d/authkeys).
chmod 600 docs/examples/tutorial/*/authkeys
echo "setup: done; run .venv/bin/gossipha --help"
