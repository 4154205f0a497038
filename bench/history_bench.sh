#!/usr/bin/env bash
# History-scale benchmark: a volume whose history holds many commits of one
# directory, made the way a mount makes them (each fsync of a changed file is
# a commit), then the commands that read the whole history, timed.
#
#   bench/history_bench.sh [--hashfs PATH] [--commits N] [--files F] [--work DIR]
#
# Defaults: 10,000 commits rewriting files of a 1,000-file directory, one at
# a time with fsync, in a fresh work dir under /var/tmp (removed at the end
# unless --work is given). Prints a table of wall time, CPU time and peak RSS
# per command, and the wall time per kept commit. See bench/README.md
# ("History scale").
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
HASHFS="$REPO_ROOT/build/cli/hashfs"
COMMITS=10000
FILES=1000
WORK=""

die() { echo "history_bench: error: $*" >&2; exit 1; }
while (($#)); do
    case $1 in
        --hashfs)  HASHFS=$(realpath -m -- "${2:?--hashfs needs a path}"); shift 2 ;;
        --commits) COMMITS=${2:?--commits needs a number}; shift 2 ;;
        --files)   FILES=${2:?--files needs a number}; shift 2 ;;
        --work)    WORK=${2:?--work needs a dir}; shift 2 ;;
        -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *)         die "unknown argument: $1 (see --help)" ;;
    esac
done
[[ "$COMMITS" =~ ^[1-9][0-9]*$ && "$FILES" =~ ^[1-9][0-9]*$ ]] || die "--commits and --files take positive integers"
[ -x "$HASHFS" ] || die "no hashfs binary at $HASHFS (build first: bash .ci/build)"
command -v python3 >/dev/null || die "python3 is needed"
[ "$(id -u)" = 0 ] || die "run as root (the benchmark mounts a volume)"

if [ -z "$WORK" ]; then
    WORK=$(mktemp -d /var/tmp/hashfs-history.XXXXXX)
    trap '"$HASHFS" --store "$WORK/store" umount "$WORK/mnt" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
else
    [ ! -e "$WORK" ] || [ -z "$(ls -A "$WORK")" ] || die "--work $WORK is not empty"
    trap '"$HASHFS" --store "$WORK/store" umount "$WORK/mnt" >/dev/null 2>&1 || true' EXIT
fi
mkdir -p "$WORK/mnt"
export HASHFS_STORE="$WORK/store"
"$HASHFS" init >/dev/null

echo "making $COMMITS commits of a $FILES-file directory through a mount..." >&2
"$HASHFS" mount vol "$WORK/mnt" >/dev/null
start=$(date +%s.%N)
python3 - "$WORK/mnt" "$COMMITS" "$FILES" <<'EOF'
import os, sys
mnt, commits, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(files):  # the directory, in one go (grouped into few commits)
    with open(f"{mnt}/f{i}", "wb") as f:
        f.write(b"file %d\n" % i)
for i in range(commits):
    fd = os.open(f"{mnt}/f{i % files}", os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"change %d\n" % i)
    os.fsync(fd)  # returns once the commit holding it is durable
    os.close(fd)
EOF
made=$(echo "$(date +%s.%N) - $start" | bc)
"$HASHFS" umount "$WORK/mnt" >/dev/null
kept=$("$HASHFS" log vol --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')

rows=()
# timed LABEL CMD...: runs CMD with its output discarded, records a table row.
timed() {
    local label=$1; shift
    sync
    echo 3 > /proc/sys/vm/drop_caches
    /usr/bin/time -f "%e %U %S %M" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" \
        || die "$label failed: $(tail -n3 "$WORK/err")"
    read -r wall user sys rss < "$WORK/time"
    rows+=("$(printf '| %s | %.2f | %.2f | %.0f | %.0f |' "$label" "$wall" "$(echo "$user + $sys" | bc)" \
        "$(echo "$rss / 1024" | bc)" "$(echo "$wall * 1000000 / $kept" | bc)")")
}
timed "log --json" "$HASHFS" log vol --json
timed "stats" "$HASHFS" stats
timed "verify" "$HASHFS" verify
timed "gc" "$HASHFS" gc
timed "diff oldest newest" "$HASHFS" diff "vol~$((kept - 1))" vol
# (The mount daemon detaches: this row's CPU and RSS are the client side's.)
# shellcheck disable=SC2016  # expanded by the inner bash
timed "mount, ls .hashfs/history, umount" bash -c \
    '"$0" mount vol "$1" --read-only && ls "$1/.hashfs/history" | wc -l && "$0" umount "$1"' "$HASHFS" "$WORK/mnt"
timed "forget --keep-last 100" "$HASHFS" forget vol --keep-last 100
timed "gc after forget" "$HASHFS" gc

echo
echo "History scale: $kept commits kept ($COMMITS fsync'd rewrites of a $FILES-file directory, made in $(printf '%.1f' "$made") s); page cache dropped before each command"
echo
echo "| command | wall s | CPU s | peak RSS MiB | wall µs per commit |"
echo "|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
