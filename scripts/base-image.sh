#!/usr/bin/env bash
# Builds a Debian 12 base image locally, for building the service image where Docker Hub is out of reach:
#   scripts/base-image.sh [NAME]        (default whisper-local/debian:bookworm; nothing to do if it exists)
# debootstrap (minbase) writes the root file system from Debian's own package archive, `docker import` turns
# it into an image. The Dockerfile takes it as BASE_IMAGE; the shipped default stays NVIDIA's CUDA image.
# Needs root, debootstrap and a running Docker engine; says in one line what is missing.
set -euo pipefail

name="${1:-whisper-local/debian:bookworm}"
suite="${DEBIAN_SUITE:-bookworm}"

docker image inspect "$name" >/dev/null 2>&1 && exit 0
command -v debootstrap >/dev/null || { echo "base-image: debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "base-image: debootstrap needs root: sudo $0 $*" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "base-image: no Docker engine answers: start dockerd first" >&2; exit 1; }

root="$(mktemp -d "${TMPDIR:-/tmp}/base-image.XXXXXX")"
trap 'rm -rf "$root"' EXIT
echo "base-image: debootstrap $suite (minbase) -> $name"
if ! debootstrap --variant=minbase "$suite" "$root/fs" >"$root/debootstrap.log" 2>&1; then
  tail -n 5 "$root/debootstrap.log" >&2
  echo "base-image: debootstrap $suite failed (log above)" >&2
  exit 1
fi
rm -rf "$root"/fs/var/cache/apt/archives/*.deb "$root"/fs/var/lib/apt/lists/*
tar -C "$root/fs" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["bash"]' \
  --message "debootstrap --variant=minbase $suite" - "$name" >/dev/null
echo "base-image: $name ready"
