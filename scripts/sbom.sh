#!/usr/bin/env bash
# An SBOM per image: CycloneDX 1.6 JSON of the Python packages each service's image installs, as constraints.txt
# pins them (the Dockerfiles install with -c constraints.txt), with the service as the root component.
#   bash scripts/sbom.sh [service ...]     # default: all five; writes dist/sbom/<service>.cdx.json
# SBOM_DIR overrides the output folder. Needs .venv (scripts/bootstrap.sh: cyclonedx-bom is a dev requirement).
# The Dockerfiles name the file in their label io.sandan.sbom; publish it with the image (e.g. `cosign attest
# --type cyclonedx --predicate dist/sbom/<service>.cdx.json <image>`). Python packages only: the base image's
# Debian packages are the base image's SBOM (`docker buildx build --sbom=true` adds one of the whole image).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
out="${SBOM_DIR:-dist/sbom}"
mkdir -p "$out"
services=("$@")
[ "${#services[@]}" -gt 0 ] || services=(intake dispatch scoring notify gateway)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for svc in "${services[@]}"; do
  .venv/bin/python scripts/sbom_requirements.py "$svc" >"$work/$svc.txt"
  # reproducible: no timestamp or random serial number, so an unchanged image has an unchanged SBOM
  .venv/bin/cyclonedx-py requirements "$work/$svc.txt" --pyproject "services/$svc/pyproject.toml" \
    --mc-type application --spec-version 1.6 --output-reproducible --output-format JSON \
    --output-file "$out/$svc.cdx.json"
  echo "sbom: $out/$svc.cdx.json ($(wc -l <"$work/$svc.txt") packages)" >&2
done
