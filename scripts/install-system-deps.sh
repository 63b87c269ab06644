#!/usr/bin/env bash
# Install the system packages the tests need: Debian's chromium for the browser test.
# Playwright drives this browser; its own `playwright install` downloads one and needs
# the internet, which workshop machines may not have.
set -euo pipefail

if [ -x /usr/bin/chromium ] || [ -n "${CHROMIUM_PATH:-}" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-system-deps: no apt-get here; install Chromium and set CHROMIUM_PATH to it" >&2
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "install-system-deps: installing chromium with apt-get (one time)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
