#!/usr/bin/env bash
# Refresh the vendored Apache ECharts (npm `echarts`, Apache-2.0) in the gateway's static files: the minified
# common build (bar, line, pie) with its LICENSE and NOTICE. Committed, so neither the build nor the pages need npm.
set -euo pipefail
VERSION="${1:-6.1.0}"
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
