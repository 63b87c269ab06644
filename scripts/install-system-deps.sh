#!/usr/bin/env bash
# Install the system packages the tests need: Debian's chromium for the browser test
# (Playwright's own `playwright install` downloads a browser and needs the internet) and
# redis-server for the broker tests when no Redis runs on this machine, and nginx-light for the
# container tests (they run the project's nginx config in front of a stage; NGINX_PATH overrides).
set -euo pipefail

packages=()
if [ ! -x /usr/bin/chromium ] && [ -z "${CHROMIUM_PATH:-}" ]; then
  packages+=(chromium)
fi
if ! command -v redis-server >/dev/null 2>&1 && [ -z "${TEST_REDIS_URL:-}" ]; then
  packages+=(redis-server)
fi
if [ ! -x /usr/sbin/nginx ] && ! command -v nginx >/dev/null 2>&1 && [ -z "${NGINX_PATH:-}" ]; then
  packages+=(nginx-light)
fi
if [ ${#packages[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-system-deps: no apt-get here; install ${packages[*]} yourself" >&2
  echo "  (set CHROMIUM_PATH to a Chromium, TEST_REDIS_URL to a Redis, NGINX_PATH to an nginx)" >&2
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
echo "install-system-deps: installing ${packages[*]} with apt-get (one time)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}" >/dev/null
