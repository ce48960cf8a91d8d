#!/bin/bash
# The shared config file: both programs accept the commented sample (so each
# knows the other's keys), the sample documents every key of both, and a
# typo in a key is an error in either program.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
top_builddir=${top_builddir:-$PWD}
sample=$top_srcdir/contrib/bayeux.conf.sample
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=tests/tap.sh
. "$top_srcdir/tests/tap.sh"

fails() {   # fails COMMAND...: succeeds when COMMAND exits 2 (usage error)
    "$@"
    [ $? -eq 2 ]
}

# Keys a program declares, from its --help ("  --key=VALUE  ...").
keys_of() {
    "$1" --help | sed -n 's/^  --\([a-z-]*\)=.*/\1/p' | grep -v '^config$' | sort -u
}

echo "1..8"
for prog in bayeuxd bayeux-fcgi; do
    bin=$top_builddir/$prog
    check "$prog accepts the sample config" "$bin" --config "$sample" --check-config
    printf 'timeout = 20s\ntimeuot = 5s\n' >"$tmp/typo.conf"
    check "$prog refuses an unknown key" fails "$bin" --config "$tmp/typo.conf" --check-config
    check "$prog refuses an unknown flag" fails "$bin" --no-such-flag=1 --check-config
done
keys_of "$top_builddir/bayeuxd" >"$tmp/keys"
keys_of "$top_builddir/bayeux-fcgi" >>"$tmp/keys"
sort -u "$tmp/keys" -o "$tmp/keys"
sed -n 's/^#* *\([a-z-]*\) *=.*/\1/p' "$sample" | sort -u >"$tmp/sample-keys"
check "the sample documents every key of both programs" \
    diff "$tmp/keys" <(comm -12 "$tmp/keys" "$tmp/sample-keys")
check "every key in the sample exists" diff <(comm -23 "$tmp/sample-keys" "$tmp/keys") /dev/null
exit $failed
