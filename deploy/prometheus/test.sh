#!/usr/bin/env bash
# Checks the Prometheus configuration and alert rules, and runs the rules' unit tests, with promtool.
# Installs Debian's prometheus package (which provides promtool) when promtool is missing.
# Usage: bash deploy/prometheus/test.sh    (exits non-zero when a check or a test fails)
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v promtool >/dev/null 2>&1; then
  echo "promtool not found: installing Debian's prometheus package" >&2
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus
fi
promtool --version | head -n 1

promtool check config prometheus.yml
promtool check rules alerts.yml

# every alert carries a severity label and the summary and runbook annotations
awk '
  function done() { if (name != "" && !(sev && sum && run)) { print "alert " name " lacks severity, summary or runbook" > "/dev/stderr"; bad = 1 } }
  /^[[:space:]]*- alert:/ { done(); name = $3; sev = sum = run = 0; next }
  /^[[:space:]]*- record:/ { done(); name = ""; next }
  /^[[:space:]]+severity:/ { sev = 1 }
  /^[[:space:]]+summary:/ { sum = 1 }
  /^[[:space:]]+runbook:/ { run = 1 }
  END { done(); exit bad }
' alerts.yml

shopt -s nullglob
tests=(*test*.yml)
if [ "${#tests[@]}" -eq 0 ]; then
  echo "no promtool rule tests (*test*.yml) in deploy/prometheus" >&2
  exit 1
fi
promtool test rules "${tests[@]}"
