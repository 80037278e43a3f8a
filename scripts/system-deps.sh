#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the project needs, only those missing.
#   scripts/system-deps.sh run    what `make run` needs (ffmpeg)
#   scripts/system-deps.sh test   what `make test` needs as well (sshd, prometheus, espeak-ng, chromium, ...)
# As root it runs apt-get; otherwise it prints the one command that fixes it and exits 1.
set -euo pipefail

run_pkgs=(ffmpeg)
test_pkgs=(ffmpeg espeak-ng openssh-server prometheus prometheus-node-exporter iproute2 sudo shellcheck nginx curl
  chromium chromium-driver  # tests/web: the pages in a real headless browser
  debootstrap docker-registry  # tests/image, tests/deploy: a local base image and a local registry
  postgresql)  # tests/jobs: the fleet's job store on a real PostgreSQL (a throwaway cluster per run)
# tests/image and tests/deploy drive a real Docker engine: Debian's docker.io, unless an engine is installed
# already (docker-ce and docker.io conflict).
docker_pkgs=(docker.io)

case "${1:-run}" in
  run) wanted=("${run_pkgs[@]}") ;;
  test) wanted=("${test_pkgs[@]}")
    command -v dockerd >/dev/null || wanted+=("${docker_pkgs[@]}") ;;
  *) echo "usage: $0 run|test" >&2; exit 2 ;;
esac

missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Packages must not try to start daemons here (containers and CI have no init system).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
