#!/bin/sh
# Rebuild three-occ4d.min.js: the few three.js classes the HTML viewer uses plus OrbitControls,
# as one minified script defining the global THREE, so a viewer file works opened from disk
# (no server, no module imports). Needs node and npm; run from anywhere.
set -e
THREE_VERSION=0.187.0
ESBUILD_VERSION=0.28.2
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm init -y >/dev/null
npm install --no-audit --no-fund "three@$THREE_VERSION" "esbuild@$ESBUILD_VERSION" >/dev/null
cp "$here/three-entry.js" entry.js
{
  printf '/* three.js r%s (MIT, see three-LICENSE) with OrbitControls; bundled for occ4d */\n' \
    "$(echo "$THREE_VERSION" | cut -d. -f2)"
  node_modules/.bin/esbuild entry.js --bundle --minify --format=iife --global-name=THREE \
    --target=es2020 --legal-comments=none
} > "$here/three-occ4d.min.js"
cp node_modules/three/LICENSE "$here/three-LICENSE"
echo "wrote $here/three-occ4d.min.js ($(wc -c < "$here/three-occ4d.min.js") bytes)"
