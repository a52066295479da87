#!/usr/bin/env bash
# Installs Debian's chromium package for the browser test tier
# (cmd/stepup-bridge demo browser test) when /usr/bin/chromium is missing.
# No browser download of its own: the distribution's package only.
#
#   bash deploy/ensure-chromium.sh
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
	echo "== chromium present: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)" >&2
	exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "== /usr/bin/chromium is missing and apt-get is not available: install chromium, or set STEPUP_SKIP_BROWSER=1" >&2
	exit 1
fi
echo "== installing chromium with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version >&2
