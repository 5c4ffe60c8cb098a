#!/bin/sh
# System packages the tests need: headless Chromium (the HTML viewer test) and the OpenGL
# libraries VTK/pyvista use for off-screen rendering. Debian/Ubuntu only; skipped elsewhere or
# when everything is already there.
set -e
need=""
for pkg in chromium libosmesa6 libegl1 libgl1 libglx-mesa0 libxrender1 libgomp1; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need="$need $pkg"
done
[ -z "$need" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: apt-get not found; please install:$need" >&2
  exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
