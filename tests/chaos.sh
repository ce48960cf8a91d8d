#!/bin/bash
# bench/chaos for 60 s with a fixed seed behind nginx (see bench/chaos and
# bench/README.md): nothing lost, duplicated or reordered beyond what
# docs/persistence.md allows, whatever the faults. Its output is TAP; skips
# (as "1..0 # SKIP") without nginx, node or node_modules.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
top_builddir=${top_builddir:-$PWD}
out=$(mktemp "${TMPDIR:-/tmp}/bx-chaos-tap.XXXXXX") || exit 1
trap 'rm -f "$out"' EXIT
"$top_srcdir/bench/chaos" --duration "${BX_CHAOS_DURATION:-60}" --seed "${BX_CHAOS_SEED:-20260101}" \
    --server nginx --build "$top_builddir" | tee "$out"
status=${PIPESTATUS[0]}
# A skip was already said as "1..0 # SKIP"; a violation as "not ok" after
# the plan: an exit status on top would count either twice.
if [ "$status" -eq 77 ] || { grep -q '^1\.\.[0-9]' "$out" && grep -q '^not ok' "$out"; }; then
    status=0
fi
exit "$status"
