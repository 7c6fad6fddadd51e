#!/usr/bin/env bash
# Builds local stand-ins for the base images that docker-compose.yml and the Dockerfile name, on a
# machine where no image registry is reachable: a Debian bookworm root made with debootstrap from
# the mirror apt already uses here, then one small image per official name and tag.
# Needs root, a running dockerd, and `apt-get install docker.io docker-compose debootstrap`.
# Differences from the official images (say them when you report figures measured on these):
#   python   Debian's Python 3.11 in a venv at /usr/local (official: 3.12); no network for pip
#            inside builds here, so install from wheels made beforehand
#   redis    Debian's redis-server 7.0 (official: 7.4), official-like entrypoint, protected mode off
#   nginx    Debian's nginx 1.22 (official: 1.27; 1.22 lacks the upstream `resolve` parameter),
#            with wget for the health check (the official image has busybox's)
#   prom     Debian's prometheus 2.42 (official: 2.55); no Grafana in Debian
# Used by scripts/compose-check when the real images cannot be pulled.
# Usage: build.sh [WORKDIR]   (default: a folder under the system temp dir)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-${TMPDIR:-/tmp}/docker-standins}
mkdir -p "$work"
if ! docker image inspect debian-base:bookworm-minbase >/dev/null 2>&1; then
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null)
  [ -d "$work/rootfs/usr" ] || debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror"
  rm -f "$work"/rootfs/var/cache/apt/archives/*.deb
  rm -rf "$work"/rootfs/var/lib/apt/lists/* "$work/rootfs/etc/apt/sources.list"
  mkdir -p "$work/rootfs/var/lib/apt/lists/partial"
  cp /etc/apt/sources.list.d/*.sources "$work/rootfs/etc/apt/sources.list.d/"
  tar -C "$work/rootfs" -c . | docker import -c 'CMD ["bash"]' - debian-base:bookworm-minbase
fi
# Build contexts must be writable: copy them out of this (read-only) folder first.
for d in python redis nginx prometheus; do rm -rf "${work:?}/$d"; cp -r "$here/$d" "$work/$d"; done
docker build -q -t python:3.12.8-slim-bookworm "$work/python"
docker build -q -t redis:7.4.1-alpine "$work/redis"
docker build -q -t nginx:1.27.3-alpine "$work/nginx"
docker build -q -t prom/prometheus:v2.55.1 "$work/prometheus"
docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E 'python|redis|nginx|prometheus|debian-base'
