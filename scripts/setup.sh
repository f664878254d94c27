#!/usr/bin/env bash
# Installs what sdrt needs to build and test on Debian 12, by package name.
# Idempotent: installs only what is missing. Uses sudo when not root.
set -euo pipefail

PKGS=(build-essential cmake pkg-config libcjson-dev libpng-dev libjpeg-dev libwebp-dev
      libopenblas-dev clang libclang-rt-14-dev libvulkan-dev mesa-vulkan-drivers glslc mingw-w64
      libhiredis-dev libssl-dev openssl redis-server python3)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
