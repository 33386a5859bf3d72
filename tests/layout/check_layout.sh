#!/usr/bin/env bash
# The source tree's layout rules (README.md, "Source layout"), checked on every `make test`:
#   1. no daemon folder includes another daemon folder's headers;
#   2. a daemon's core (daemons/<kind>/<kind>_core*) is socket-free: it includes no ZeroMQ,
#      Asio or Beast header, nor common/zmq/ or common/http/ (but common/http/target.hpp
#      and common/http/cross_site.hpp, plain string parsing in vartalap_common);
#   3. no source file outside tests/ is over 600 lines.
# Usage: check_layout.sh SOURCE_DIR. Prints every violation; exits 1 if there is any.
set -u
cd "$1" || exit 2
status=0
fail() { echo "layout: $*"; status=1; }

for dir in daemons/*/; do
    kind=$(basename "$dir")
    while IFS=: read -r file line text; do
        [ -n "$file" ] || continue
        other=$(sed -E 's|.*"daemons/([a-z_]+)/.*|\1|' <<<"$text")
        [ "$other" = "$kind" ] || fail "$file:$line includes daemons/$other/ (another daemon's folder)"
    done < <(grep -Hn '#include "daemons/[a-z_]*/' "$dir"*.hpp "$dir"*.cpp 2>/dev/null)
done

for file in daemons/*/*_core*.hpp daemons/*/*_core*.cpp; do
    [ -e "$file" ] || continue
    hits=$(grep -Hn -E '#include [<"](zmq\.hpp|zmq_addon\.hpp|boost/asio|boost/beast|common/zmq/|common/http/)' "$file" |
           grep -v -E 'common/http/(target|cross_site)\.hpp')
    if [ -n "$hits" ]; then
        while IFS= read -r hit; do echo "layout: $hit (a core must be socket-free)"; done <<<"$hits"
        status=1
    fi
done

while read -r lines file; do
    [ "$file" = total ] && continue
    [ "$lines" -gt 600 ] && fail "$file has $lines lines (more than 600)"
done < <(find common daemons topology tools -name '*.cpp' -o -name '*.hpp' | xargs wc -l)

[ $status -eq 0 ] && echo "layout: ok"
exit $status
