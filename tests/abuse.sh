#!/bin/bash
# One anonymous client against the byte bounds (docs/security.md): bench/abuse
# in its --check mode behind nginx, with bayeuxd's defaults. It fails unless a
# bystander's handshakes all succeed while one ack session publishes messages
# of 255 KB without ever acknowledging, abandons a connect every second and
# leaves one unread; bayeuxd and the responder stay under 48 MB; and that
# session's queue stays within max-queue-bytes.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
top_builddir=${top_builddir:-$PWD}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=tests/tap.sh
. "$top_srcdir/tests/tap.sh"

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    echo "1..0 # SKIP nginx is not installed"
    exit 0
fi
# AddressSanitizer's shadow memory and quarantine make the memory figures
# meaningless: under it only the bounds bayeuxd reports are checked.
rss=48
[ -z "${BX_SANITIZED:-}" ] || rss=0
echo "1..2"
check "one client's 255 KB publishes, abandoned and unread connects: bounded, bystander served" \
    python3 "$top_srcdir/bench/abuse" --build "$top_builddir" --check --seconds 10 \
    --rss-limit-mb "$rss"
check "the same with queue-overflow = end-session" \
    python3 "$top_srcdir/bench/abuse" --build "$top_builddir" --check --seconds 6 \
    --rss-limit-mb "$rss" --bayeuxd-args "--queue-overflow end-session"
echo "# abuse: $n checks"
exit "$failed"
