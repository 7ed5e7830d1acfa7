#!/usr/bin/env bash
# Refresh the vendored third-party files (committed, so neither the build, the pages nor the tests need npm):
# - Apache ECharts (npm `echarts`, Apache-2.0) in the gateway's static files: the minified common build (bar, line,
#   pie) with its LICENSE and NOTICE;
# - axe-core (npm `axe-core`, MPL-2.0; the browser tests' accessibility check) in tests/vendor/: axe.min.js with its
#   licence header, LICENSE and LICENSE-3RD-PARTY.txt.
# Usage: vendor.sh [echarts-version [axe-core-version]]
set -euo pipefail
VERSION="${1:-6.1.0}"
AXE_VERSION="${2:-4.14.1}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack "echarts@$VERSION" --silent >/dev/null && tar xzf "echarts-$VERSION.tgz")
DEST="$HERE/src/sandan_gateway/static/vendor"
mkdir -p "$DEST"
cp "$WORK/package/dist/echarts.common.min.js" "$DEST/echarts.min.js"
cp "$WORK/package/LICENSE" "$DEST/ECHARTS-LICENSE.txt"
cp "$WORK/package/NOTICE" "$DEST/ECHARTS-NOTICE.txt"
echo "echarts $VERSION vendored into $DEST"

rm -rf "$WORK/package"
(cd "$WORK" && npm pack "axe-core@$AXE_VERSION" --silent >/dev/null && tar xzf "axe-core-$AXE_VERSION.tgz")
DEST="$HERE/tests/vendor"
mkdir -p "$DEST"
cp "$WORK/package/axe.min.js" "$DEST/axe.min.js"
cp "$WORK/package/LICENSE" "$DEST/AXE-LICENSE.txt"
cp "$WORK/package/LICENSE-3RD-PARTY.txt" "$DEST/AXE-LICENSE-3RD-PARTY.txt"
echo "axe-core $AXE_VERSION vendored into $DEST"
