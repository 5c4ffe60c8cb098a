#!/bin/sh
# System packages the tests need: headless Chromium (the HTML viewer test) and the OpenGL
# libraries VTK/pyvista use for off-screen rendering. Debian/Ubuntu only; skipped elsewhere or
# when everything is already there.
# Off screen without a display, occ4d.vis.voxels asks VTK for OSMesa (libosmesa6: software,
# in-process) and otherwise EGL (libegl1 + libegl-mesa0 + libgl1-mesa-dri for Mesa's software
# driver, or a GPU driver's EGL). fonts-dejavu-core gives headless Chromium a font for the viewer.
set -e
need=""
for pkg in chromium fonts-dejavu-core libosmesa6 libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 libglx-mesa0 \
           libxrender1 libgomp1; do
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
