#!/usr/bin/env bash
# Counts the lines of kvd that exist for Molt, per version: the programmer's effort.
#   - in the server's own files: code lines that call Molt (molt_..., MOLT_...), attributed to
#     the version whose `#if KVD_VERSION >= N` block holds them (v1 when in none);
#   - the transformers: the code lines (not blank, not comments) of transform_vN.c.
# Usage: examples/kvd/molt_lines.sh
set -euo pipefail
cd "$(dirname "$0")"

# Code lines of a C file without blank lines, comments, and the test-only KVD_FAULTY_TRANSFORMER
# blocks (good enough for our own style).
code_lines() { sed -e 's|/\*.*\*/||g' -e '/^#ifdef KVD_FAULTY_TRANSFORMER/,/^#endif/d' "$1" | awk '/\/\*/ { c = 1 } !c && NF { n++ } /\*\// { c = 0 } END { print n + 0 }'; }

server_lines=$(cat main.c resp.c store.c commands.c kvd.h | sed -e 's|/\*.*\*/||g' | awk '/\/\*/ { c = 1 } !c && NF { n++ } /\*\// { c = 0 } END { print n + 0 }')
declare -A calls
for version in 1 2 3 4 5; do calls[$version]=0; done
while read -r version; do calls[$version]=$((calls[$version] + 1)); done < <(
    awk '/^#if KVD_VERSION >= [0-9]/ { stack[++depth] = $4; next }
         /^#if/ { stack[++depth] = 0; next }
         /^#else/ { stack[depth] = 0; next }
         /^#endif/ { depth--; next }
         /molt_|MOLT_/ && !/^ *(\/\*|\*)/ && !/#include/ {
             v = 1; for (i = 1; i <= depth; i++) if (stack[i] > v) v = stack[i]; print v }' main.c store.c commands.c kvd.h)

printf '| version | what changes | Molt calls in the server | transformer lines | total for Molt |\n'
printf '|---|---|---|---|---|\n'
what=("" "the first version: update points, first-start guard, wake fd, INFO history"
      "entries gain hits and last access time" "fixed buckets become a resizable table"
      "key expiry and a new expiry thread" "values as numbers or inline strings")
total=0
for version in 1 2 3 4 5; do
    transformer=0
    [ -f "transform_v$version.c" ] && transformer=$(code_lines "transform_v$version.c")
    sum=$((calls[$version] + transformer))
    total=$((total + sum))
    printf '| v%d | %s | %d | %d | %d |\n' "$version" "${what[$version]}" "${calls[$version]}" "$transformer" "$sum"
done
printf '\nAll five versions: %d lines for Molt, beside %d lines of server code.\n' "$total" "$server_lines"
