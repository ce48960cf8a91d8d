#!/bin/bash
# publish.sh - publishes each line of a file (or of stdin) to a channel with
# bayeuxctl, one message a line, and acts on bayeuxctl's exit status
# (docs/backend.md): 0 published; 2 the line is not JSON (skipped, counted);
# 3 bayeuxd did not answer (tried again, then given up); 1 refused (stop).
#
#   publish.sh [--BAYEUXCTL-OPTION=VALUE ...] CHANNEL [FILE]
#
# Each line is one JSON value (JSON Lines), e.g. {"text":"hi"}; empty lines
# are skipped. Options before CHANNEL go to bayeuxctl as they are, written
# --key=value (--app=ipc:///run/bayeux-fcgi/app.sock, --config=FILE,
# --timeout=2000). $BAYEUXCTL names the program (default: bayeuxctl).
#
#   tail -n0 -F /var/log/app/news.jsonl | publish.sh /news
#
# Exit status: 0 every line published, 2 some lines were not JSON, 1 bayeuxd
# refused one (bad channel: nothing after it was sent), 3 bayeuxd stopped
# answering.
set -u

ctl=${BAYEUXCTL:-bayeuxctl}
opts=()
while [ $# -gt 0 ] && [ "${1#--}" != "$1" ]; do
    case "$1" in
        --*=*) opts+=("$1") ;;
        *) echo "publish.sh: write bayeuxctl options as --key=value: $1" >&2; exit 2 ;;
    esac
    shift
done
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: publish.sh [--BAYEUXCTL-OPTION=VALUE ...] CHANNEL [FILE]" >&2
    exit 2
fi
channel=$1
input=${2:--}
if [ "$input" != - ]; then
    exec <"$input" || exit 2
fi

published=0
skipped=0
n=0
while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    [ -n "${line//[[:space:]]/}" ] || continue
    for try in 1 2 3; do
        "$ctl" --quiet "${opts[@]}" publish "$channel" "$line"
        rc=$?
        [ "$rc" -eq 3 ] || break
        # No reply: bayeuxd is restarting, or down. Wait a little and retry;
        # a publish that timed out may still have been delivered, so a
        # subscriber can see this line twice.
        echo "publish.sh: line $n: no reply from bayeuxd (try $try of 3)" >&2
        sleep "$try"
    done
    case "$rc" in
        0) published=$((published + 1)) ;;
        2) skipped=$((skipped + 1))
           echo "publish.sh: line $n skipped" >&2 ;;
        1) echo "publish.sh: line $n refused; stopping after $published published" >&2
           exit 1 ;;
        *) echo "publish.sh: line $n: bayeuxd does not answer; stopping after" \
               "$published published" >&2
           exit 3 ;;
    esac
done
echo "publish.sh: $published published, $skipped skipped to $channel" >&2
[ "$skipped" -eq 0 ] || exit 2
exit 0
