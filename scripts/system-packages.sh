#!/usr/bin/env bash
# The Debian packages the project needs beyond Python 3.11, Java 17 and Maven's own set-up:
# installed with apt when missing (as root, or through sudo), a no-op when all are there.
#   scripts/system-packages.sh run    what `make run` needs (MariaDB for the local stack)
#   scripts/system-packages.sh test   plus what the tests use (docker-compose, chromium + chromedriver, curl)
set -euo pipefail
purpose="${1:-test}"

missing=()
command -v java  >/dev/null || missing+=(openjdk-17-jdk-headless)
command -v mvn   >/dev/null || missing+=(maven)
command -v python3.11 >/dev/null || missing+=(python3.11 python3.11-venv)
{ command -v mariadbd || test -x /usr/sbin/mariadbd; } >/dev/null || missing+=(mariadb-server)
command -v mariadb >/dev/null || missing+=(mariadb-client)
command -v setpriv >/dev/null || missing+=(util-linux)
if [[ "$purpose" == test ]]; then
  command -v docker-compose >/dev/null || missing+=(docker-compose)  # tests/test_compose.py validates the compose file
  command -v curl >/dev/null || missing+=(curl)                      # ... and runs the Kibana import script
  command -v chromium >/dev/null || missing+=(chromium)              # tests/test_dashboard.py: headless browser
  command -v chromedriver >/dev/null || missing+=(chromium-driver)
fi
((${#missing[@]})) || exit 0

if [[ $EUID -eq 0 ]]; then
  sudo=()
elif command -v sudo >/dev/null; then
  sudo=(sudo)
else
  echo "missing Debian packages: ${missing[*]}; install them as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
