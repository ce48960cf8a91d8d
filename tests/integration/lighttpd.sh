#!/bin/bash
# The integration tests behind lighttpd: lighttpd spawns two bayeux-fcgi
# processes itself (bin-path), each on its own socket as fd 0. See harness.sh.
# shellcheck source=harness.sh source-path=SCRIPTDIR
. "$(dirname "$0")/harness.sh"
bx_harness lighttpd
