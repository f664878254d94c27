#!/usr/bin/env bash
# bench/gpu/prepare_carry.sh - run on the development machine (Debian 12,
# amd64) before a device session: gathers what the GPU machine lacks into
# .gpu-carry/ (git-ignored), which the device call carries:
#   debs/       Debian packages the build needs (cJSON, libpng, libjpeg,
#               libwebp, hiredis, OpenSSL headers, Vulkan headers + loader,
#               glslc); gpu_checks.sh unpacks them into a private prefix,
#               never into /, so the image's own libraries stay as they are
#   reference/  the tiny SD1.5 reference model and data (tiny-sdxl does
#               not fit the 64 MiB a call may carry beside the tree)
# Then, with the device tool:
#   run(command="bash bench/gpu/gpu_checks.sh", carry=[".gpu-carry"], timeout_s=600)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REF=${SDRT_REFERENCE:-$ROOT/../shared/reference}
C=$ROOT/.gpu-carry
rm -rf "$C"; mkdir -p "$C/debs" "$C/reference/tiny-sd15"
PKGS=(libcjson1 libcjson-dev libpng16-16 libpng-dev zlib1g-dev libjpeg62-turbo libjpeg62-turbo-dev
      libwebp7 libwebpmux3 libwebpdemux2 libwebp-dev libhiredis0.14 libhiredis-dev libssl-dev
      libvulkan1 libvulkan-dev glslc libshaderc1)
lists=/tmp/sdrt-amd64-lists
mkdir -p "$lists/partial"
o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=$lists)
apt-get "${o[@]}" update -qq
(cd "$C/debs" && apt-get "${o[@]}" download "${PKGS[@]}" >/dev/null)
cp -r "$REF/tiny-sd15/diffusers" "$REF/tiny-sd15/t2i" "$REF/tiny-sd15/schedulers.json" "$C/reference/tiny-sd15/"
for f in README.md manifest.json tokens.json rng.json tokenizer tokenizer_2; do
  [ -e "$REF/$f" ] && cp -r "$REF/$f" "$C/reference/"
done
du -sh "$C/debs" "$C/reference"
echo "tree + carry: $(( ($(git -C "$ROOT" ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) + $(du -sb "$C" | cut -f1)) / 1048576 )) MiB (limit 64)"
