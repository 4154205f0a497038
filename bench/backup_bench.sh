#!/usr/bin/env bash
# shellcheck disable=SC2317  # tool adapters and cleanup are invoked indirectly
# Backup benchmark: hashfs vs restic vs borg on the same real data.
#
#   bench/backup_bench.sh [--hashfs PATH] [--data DIR]... [--work DIR]
#                         [--change-percent P] [--only TOOL,...] [--keep]
#
# Steps, per tool (the page cache is dropped before every timed step):
#   1. first backup of $WORK/data   (a private copy of the --data dirs)
#   2. ~P% of the regular files are modified ONCE, deterministically, after
#      all tools made their first backup, so every tool sees identical data
#   3. incremental backup
#   4. restore of the latest backup into an empty dir, verified against
#      $WORK/data (content with diff -r, metadata with a find listing)
# Stored bytes are `du -sb` of each tool's repository directory.
# See bench/README.md ("Backup benchmark") for the targets.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

# ----------------------------------------------------------------- options --
HASHFS_BIN="$REPO_ROOT/build/cli/hashfs"
DATA_DIRS=()
WORK=""
WORK_IS_TEMP=no
CHANGE_PERCENT=1
TOOLS=(hashfs restic borg)
KEEP=no

usage() {
    sed -n '3,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    cat <<EOF
Options:
  --hashfs PATH         hashfs binary (default: build/cli/hashfs in the repo root)
  --data DIR            data to back up; repeatable (default: /usr/lib /usr/share)
  --work DIR            work dir, must be empty or absent; kept afterwards
                        (default: fresh mktemp -d under /var/tmp, removed at the end)
  --change-percent P    percentage of regular files to modify (default: 1)
  --only LIST           comma-separated subset of: hashfs,restic,borg
  --keep                keep the temporary work dir (repos, logs, data copy)
EOF
}

die() { echo "backup_bench: error: $*" >&2; exit 1; }
log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

while (($#)); do
    case $1 in
        --hashfs)         HASHFS_BIN=$(realpath -m -- "${2:?--hashfs needs a path}"); shift 2 ;;
        --data)           DATA_DIRS+=("${2:?--data needs a dir}"); shift 2 ;;
        --work)           WORK=${2:?--work needs a dir}; shift 2 ;;
        --change-percent) CHANGE_PERCENT=${2:?--change-percent needs a number}; shift 2 ;;
        --only)           IFS=, read -r -a TOOLS <<<"${2:?--only needs a list}"; shift 2 ;;
        --keep)           KEEP=yes; shift ;;
        -h|--help)        usage; exit 0 ;;
        *)                usage >&2; die "unknown argument: $1" ;;
    esac
done
((${#DATA_DIRS[@]})) || DATA_DIRS=(/usr/lib /usr/share)
for t in "${TOOLS[@]}"; do
    [[ $t == hashfs || $t == restic || $t == borg ]] || die "unknown tool in --only: $t"
done
if ! [[ $CHANGE_PERCENT =~ ^[0-9]+([.][0-9]+)?$ ]] ||
   ! awk -v p="$CHANGE_PERCENT" 'BEGIN{exit !(p > 0 && p <= 100)}'; then
    die "--change-percent must be a number in (0, 100]"
fi

# Resolve data dirs to absolute paths (cp --parents keeps them distinct under $DATA).
for i in "${!DATA_DIRS[@]}"; do
    [[ -d ${DATA_DIRS[$i]} ]] || die "--data ${DATA_DIRS[$i]}: not a directory"
    DATA_DIRS[i]=$(realpath -- "${DATA_DIRS[$i]}")
done

# -------------------------------------------------------------- work dir --
if [[ -z $WORK ]]; then
    WORK=$(mktemp -d /var/tmp/hashfs-bench.XXXXXX)
    WORK_IS_TEMP=yes
else
    mkdir -p -- "$WORK"
    WORK=$(realpath -- "$WORK")
    [[ -z $(ls -A -- "$WORK") ]] || die "--work $WORK is not empty"
fi
cleanup() {
    if [[ $WORK_IS_TEMP == yes && $KEEP == no ]]; then
        rm -rf -- "$WORK"
    else
        log "work dir kept: $WORK"
    fi
}
trap cleanup EXIT
for d in "${DATA_DIRS[@]}"; do
    if [[ $WORK/ == "$d"/* ]]; then die "work dir $WORK lies inside data dir $d"; fi
done

DATA=$WORK/data          # the private copy that every tool backs up
LOGS=$WORK/logs
mkdir -p "$DATA" "$LOGS" "$WORK/repos" "$WORK/restore" "$WORK/cache"

# Tool-private caches live in the work dir, so runs never share state.
export RESTIC_PASSWORD=bench
export RESTIC_CACHE_DIR=$WORK/cache/restic
export BORG_BASE_DIR=$WORK/cache/borg
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes

# ---------------------------------------------------------- prerequisites --
[[ -x /usr/bin/time ]] || { log "installing GNU time"; apt-get install -y time >/dev/null; }
for t in restic borg; do
    if [[ " ${TOOLS[*]} " == *" $t "* ]] && ! command -v "$t" >/dev/null; then
        pkg=$t; [[ $t == borg ]] && pkg=borgbackup   # Debian's package name
        log "installing $pkg"; apt-get install -y "$pkg" >/dev/null
    fi
done
command -v openssl >/dev/null || die "openssl is needed for the deterministic modification step"

HASHFS_AVAILABLE=no
if [[ -x $HASHFS_BIN ]]; then HASHFS_AVAILABLE=yes; fi

CAN_DROP=no
{ sync; echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null && CAN_DROP=yes
drop_caches() {
    sync
    if [[ $CAN_DROP == yes ]]; then { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null || true; fi
}

# ------------------------------------------------------------ tool adapters --
# Each tool provides:
#   <tool>_cmd STEP REPO [DEST]   sets the global array CMD for STEP in
#                                 init|backup1|backup2|restore (DEST: restore dir)
#   <tool>_restored_root DEST     prints where $DATA's content ends up in DEST
#   <tool>_ok_rc RC               succeeds if RC is an acceptable exit status
#   <tool>_version / <tool>_settings   one-line descriptions for the report
# All commands must be external programs so /usr/bin/time can measure them.

hashfs_cmd() {
    case $1 in
        init)    CMD=("$HASHFS_BIN" --store "$2" init) ;;
        backup*) CMD=("$HASHFS_BIN" --store "$2" backup "$DATA" --volume bench) ;;
        restore) CMD=("$HASHFS_BIN" --store "$2" restore bench "$3") ;;
    esac
}
hashfs_restored_root() {
    # Expected: DEST holds the content of $DATA. Tolerate a restic/borg-style
    # full-path layout too, but say so.
    if [[ -d $1/${DATA#/} ]]; then
        log "hashfs: restore used the full source path under DEST"
        echo "$1/${DATA#/}"
    else
        echo "$1"
    fi
}
hashfs_ok_rc()    { [[ $1 == 0 ]]; }
hashfs_version()  { "$HASHFS_BIN" --version 2>/dev/null | head -n1 || echo "hashfs (version unknown)"; }
hashfs_settings() { echo "defaults (\`--store S init\`, \`backup DIR --volume bench\`, \`restore bench DEST\`)"; }

restic_cmd() {
    case $1 in
        # Format v2 is what enables compression; restic 0.14's "stable" default
        # is already v2, but pin it so the benchmark never silently loses it.
        init)    CMD=(restic --repo "$2" init --repository-version 2) ;;
        backup*) CMD=(restic --repo "$2" backup "$DATA") ;;
        restore) CMD=(restic --repo "$2" restore latest --target "$3") ;;
    esac
}
restic_restored_root() { echo "$1/${DATA#/}"; }
restic_ok_rc()    { [[ $1 == 0 ]]; }   # 3 = "some files unreadable": not acceptable here
restic_version()  { restic version | head -n1; }
restic_settings() {
    local v
    v=$(restic --repo "$WORK/repos/restic" cat config 2>/dev/null | awk -F'[:,]' '/"version"/{gsub(/ /,"",$2); print $2}')
    echo "repo format v${v:-?}, compression auto (zstd; the default), AES-256 encryption (cannot be disabled), local cache in work dir"
}

borg_cmd() {
    case $1 in
        init)    CMD=(borg init --encryption none "$2") ;;
        backup1) CMD=(borg create "$2::bench-1" "$DATA") ;;
        backup2) CMD=(borg create "$2::bench-2" "$DATA") ;;
        # borg extract writes into the current dir; env -C keeps it one exec.
        restore) CMD=(env -C "$3" borg extract "$2::bench-2") ;;
    esac
}
borg_restored_root() { echo "$1/${DATA#/}"; }
borg_ok_rc()    { [[ $1 == 0 || $1 == 1 ]]; }   # 1 = warning (logged)
borg_version()  { borg --version; }
borg_settings() { echo "\`-e none\` (no encryption), compression lz4 (the default), default chunker, files cache in work dir"; }

# ------------------------------------------------------------ measurement --
declare -A RES=()         # RES[tool:key]
declare -A BROKEN=()      # tools whose step failed; remaining steps skipped

# timed TOOL STEP [DEST]: drop caches, run the tool's STEP under /usr/bin/time,
# record wall/user/sys/rss into RES[TOOL:STEP_*].
timed() {
    local tool=$1 step=$2 dest=${3:-} rc=0 wall user sys rss
    local out=$LOGS/$tool-$step
    "${tool}_cmd" "$step" "$WORK/repos/$tool" "$dest"
    drop_caches
    log "$tool: $step"
    /usr/bin/time -f '%e %U %S %M' -o "$out.time" "${CMD[@]}" >"$out.log" 2>&1 || rc=$?
    if ! "${tool}_ok_rc" "$rc"; then
        BROKEN[$tool]=1
        log "$tool: $step FAILED (exit $rc); last lines of $out.log:"
        tail -n 15 "$out.log" | sed 's/^/    /' >&2
        RES[$tool:${step}_wall]=FAIL
        RES[$tool:verify]="not verified: $step failed"
        return 0
    fi
    ((rc == 0)) || log "$tool: $step exited $rc (warning, see $out.log)"
    read -r wall user sys rss < <(tail -n1 "$out.time")
    RES[$tool:${step}_wall]=$wall
    RES[$tool:${step}_cpu]=$(awk -v u="$user" -v s="$sys" 'BEGIN{printf "%.2f", u+s}')
    RES[$tool:${step}_rss]=$rss
    local peak=${RES[$tool:peak_rss]:-0}
    if ((rss > peak)); then RES[$tool:peak_rss]=$rss; fi
    return 0
}

repo_bytes() { du -sb -- "$WORK/repos/$1" | cut -f1; }

untimed() {  # untimed TOOL STEP: run a non-measured step (init)
    local tool=$1 step=$2 rc=0
    "${tool}_cmd" "$step" "$WORK/repos/$tool"
    "${CMD[@]}" >"$LOGS/$tool-$step.log" 2>&1 || rc=$?
    if ((rc != 0)); then
        BROKEN[$tool]=1
        RES[$tool:verify]="not verified: $step failed"
        log "$tool: $step FAILED (exit $rc):"; tail -n 15 "$LOGS/$tool-$step.log" | sed 's/^/    /' >&2
    fi
}

# Metadata listing used for verification; directory sizes are fs-specific.
meta_listing() {
    (cd "$1" && find . -mindepth 1 -printf '%P\t%y\t%m\t%U:%G\t%s\t%n\t%T@\t%l\n') |
        awk -F'\t' -v OFS='\t' '$2 == "d" {$5 = "-"} {print}' | LC_ALL=C sort
}

# verify TOOL ROOT: compare a restore with $DATA. Never aborts the run.
verify_restore() {
    local tool=$1 root=$2
    local base=$LOGS/verify-$tool
    if [[ ! -d $root ]]; then
        RES[$tool:verify]="MISSING ($root)"
    elif ! diff -r --no-dereference -- "$DATA" "$root" >"$base.content.diff" 2>&1; then
        RES[$tool:verify]="CONTENT MISMATCH ($(grep -c '' "$base.content.diff") diff lines)"
    else
        meta_listing "$DATA" >"$base.meta.src"
        meta_listing "$root" >"$base.meta.dst"
        local n
        n=$(diff "$base.meta.src" "$base.meta.dst" | grep -c '^>' || true)
        if ((n == 0)); then
            RES[$tool:verify]="ok"
        else
            diff "$base.meta.src" "$base.meta.dst" >"$base.meta.diff" || true
            RES[$tool:verify]="content ok; metadata differs on $n entries"
        fi
    fi
    if [[ ${RES[$tool:verify]} != ok ]]; then
        log "!!!!! $tool RESTORE VERIFICATION: ${RES[$tool:verify]} (logs: $base.*; use --keep to retain them)"
        local f
        for f in "$base.content.diff" "$base.meta.diff"; do
            if [[ -s $f ]]; then head -n 20 -- "$f" | sed 's/^/    /' >&2; fi
        done
    fi
}

# json_field NAME < JSON: print a top-level numeric field (jq, else python3).
json_field() {
    if command -v jq >/dev/null; then
        jq -er --arg k "$1" '.[$k] | numbers'
    else
        python3 -c 'import json,sys; v=json.load(sys.stdin)[sys.argv[1]]; assert isinstance(v,(int,float)); print(v)' "$1"
    fi
}

# ------------------------------------------------------------- data steps --
copy_data() {
    log "copying ${DATA_DIRS[*]} into $DATA (untimed)"
    # Relative to / because coreutils' `cp --parents` trips over absolute sources.
    (cd / && cp -a --parents -- "${DATA_DIRS[@]#/}" "$DATA/")
    DATA_FILES=$(find "$DATA" -type f | wc -l)
    DATA_BYTES=$(du -sb -- "$DATA" | cut -f1)
}

# Deterministic pseudo-random bytes: AES-128-CTR keystream keyed by (tag, n).
noise() {  # noise BYTES TAG N
    head -c "$1" /dev/zero |
        openssl enc -aes-128-ctr -K "$(printf '%08x%024x' "$2" "$3")" -iv 00000000000000000000000000000000
}

# Every STRIDE-th regular file (sorted path order) gets 4 KiB appended; every
# 10th of those also gets 1000 bytes inserted in the middle.
modify_data() {
    local stride i=0 f size half tmp=$WORK/insert.tmp
    stride=$(awk -v p="$CHANGE_PERCENT" 'BEGIN{s=int(100/p+0.5); print (s<1?1:s)}')
    MOD_APPENDED=0 MOD_INSERTED=0 MOD_STRIDE=$stride
    log "modifying every ${stride}th file (~${CHANGE_PERCENT}%) (untimed)"
    while IFS= read -r -d '' f; do
        if ((i % stride == 0)); then
            noise 4096 1 "$i" >>"$DATA/$f"
            MOD_APPENDED=$((MOD_APPENDED + 1))
            if (((i / stride) % 10 == 0)); then
                size=$(stat -c %s -- "$DATA/$f")
                half=$((size / 2))
                { head -c "$half" -- "$DATA/$f"; noise 1000 2 "$i"; tail -c +"$((half + 1))" -- "$DATA/$f"; } >"$tmp"
                cat "$tmp" >"$DATA/$f"   # in place: keeps inode, mode, hardlinks
                MOD_INSERTED=$((MOD_INSERTED + 1))
            fi
        fi
        i=$((i + 1))
    done < <(cd "$DATA" && find . -type f -print0 | LC_ALL=C sort -z)
    rm -f -- "$tmp"
}

# --------------------------------------------------------------- the run --
ACTIVE=()
for t in "${TOOLS[@]}"; do
    if [[ $t == hashfs && $HASHFS_AVAILABLE == no ]]; then
        log "hashfs binary not found at $HASHFS_BIN: reporting n/a for hashfs"
        continue
    fi
    ACTIVE+=("$t")
done
((${#ACTIVE[@]})) || die "no tool to run"

copy_data

for t in "${ACTIVE[@]}"; do
    untimed "$t" init
    if [[ -n ${BROKEN[$t]:-} ]]; then continue; fi
    timed "$t" backup1
    if [[ -z ${BROKEN[$t]:-} ]]; then RES[$t:size1]=$(repo_bytes "$t"); fi
done

modify_data

for t in "${ACTIVE[@]}"; do
    if [[ -n ${BROKEN[$t]:-} ]]; then continue; fi
    timed "$t" backup2
    if [[ -n ${BROKEN[$t]:-} ]]; then continue; fi
    size2=$(repo_bytes "$t")
    RES[$t:size2]=$size2
    RES[$t:added]=$((size2 - ${RES[$t:size1]}))
    if [[ $t == hashfs ]]; then
        if "$HASHFS_BIN" --store "$WORK/repos/hashfs" stats --json >"$LOGS/hashfs-stats.json" 2>"$LOGS/hashfs-stats.err"; then
            RES[hashfs:stats_stored]=$(json_field stored_bytes <"$LOGS/hashfs-stats.json" 2>/dev/null || true)
        fi
    fi
    dest=$WORK/restore/$t
    mkdir -p "$dest"
    timed "$t" restore "$dest"
    if [[ -n ${BROKEN[$t]:-} ]]; then continue; fi
    log "$t: verifying restore (untimed)"
    verify_restore "$t" "$("${t}_restored_root" "$dest")"
    rm -rf -- "$dest"   # restores are large; free the space before the next tool
done

# ----------------------------------------------------------------- report --
is_num() { [[ $1 =~ ^-?[0-9]+([.][0-9]+)?$ ]]; }

human_bytes() {
    awk -v b="$1" 'BEGIN { split("B KiB MiB GiB TiB", u, " "); s = b < 0 ? -1 : 1; x = b * s; i = 1
                           while (x >= 1024 && i < 5) { x /= 1024; i++ }
                           if (i == 1) printf "%d B", b; else printf "%.2f %s", s * x, u[i] }'
}

fmt() {  # fmt KIND VALUE
    is_num "$2" || { echo "$2"; return; }
    case $1 in
        secs)  printf '%.2f' "$2" ;;
        bytes) human_bytes "$2" ;;
        kib)   human_bytes "$(($2 * 1024))" ;;
        *)     echo "$2" ;;
    esac
}

ratio() {  # ratio A B -> A/B with 2 decimals, or n/a
    if is_num "$1" && is_num "$2"; then
        awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else if (a == 0) print "1.00"; else print "inf" }'
    else
        echo n/a
    fi
}

min_num() {  # smallest numeric argument, or n/a
    local m=n/a v
    for v; do
        is_num "$v" || continue
        if [[ $m == n/a ]] || awk -v a="$v" -v b="$m" 'BEGIN{exit !(a < b)}'; then m=$v; fi
    done
    echo "$m"
}

# row LABEL KEY KIND [TARGET] — TARGET is min:F (hashfs <= F x min(restic,borg))
# or restic:F (hashfs <= F x restic).
row() {
    local label=$1 key=$2 kind=$3 target=${4:-}
    local h=${RES[hashfs:$key]:-n/a} r=${RES[restic:$key]:-n/a} b=${RES[borg:$key]:-n/a}
    local rmin rres want=n/a goal="" met=""
    rmin=$(ratio "$h" "$(min_num "$r" "$b")")
    rres=$(ratio "$h" "$r")
    case $target in
        min:*)    goal="≤ ${target#min:}× min"; want=$rmin ;;
        restic:*) goal="≤ ${target#restic:}× restic"; want=$rres ;;
    esac
    [[ $goal == "≤ 1× restic" ]] && goal="≤ restic"
    if [[ -n $target ]]; then
        met=n/a
        if is_num "$want"; then
            awk -v x="$want" -v f="${target#*:}" 'BEGIN{exit !(x <= f)}' && met=yes || met=NO
        fi
    fi
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" \
        "$(fmt "$kind" "$h")" "$(fmt "$kind" "$r")" "$(fmt "$kind" "$b")" "$rmin" "$rres" "$goal" "$met"
}

tool_line() {
    local t=$1
    if [[ " ${ACTIVE[*]} " == *" $t "* ]]; then
        echo "- **$t**: $("${t}_version"); $("${t}_settings")"
    elif [[ $t == hashfs && " ${TOOLS[*]} " == *" hashfs "* ]]; then
        echo "- **hashfs**: not run (no binary at \`$HASHFS_BIN\`)"
    else
        echo "- **$t**: not run (excluded by --only)"
    fi
}

report() {
    echo "# Backup benchmark results"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); host: $(nproc) cores, $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, kernel $(uname -r)"
    echo "- data: \`${DATA_DIRS[*]}\` (copied with \`cp -a\`): $DATA_FILES regular files, $(human_bytes "$DATA_BYTES")"
    echo "- change step: every ${MOD_STRIDE}th regular file in sorted order (~${CHANGE_PERCENT}%): $MOD_APPENDED files got 4 KiB appended, $MOD_INSERTED of them also 1000 bytes inserted mid-file"
    echo "- page cache dropped before each timed step: $CAN_DROP"
    echo "- times are wall seconds from \`/usr/bin/time\`; CPU = user + sys; RSS = max resident set of the tool process"
    echo "- stored bytes = \`du -sb\` of the repository directory (tool caches outside the repo are not counted)"
    for t in hashfs restic borg; do tool_line "$t"; done
    echo
    echo "| metric | hashfs | restic | borg | hashfs/min(restic,borg) | hashfs/restic | target | met |"
    echo "|---|---|---|---|---|---|---|---|"
    row "first backup wall (s)"         backup1_wall secs  min:0.5
    row "incremental backup wall (s)"   backup2_wall secs  min:0.5
    row "restore wall (s)"              restore_wall secs  restic:0.5
    row "stored bytes (final repo)"     size2        bytes restic:1
    row "incremental bytes added"       added        bytes restic:1
    row "peak RSS"                      peak_rss     kib   min:0.75
    row "first backup CPU (s)"          backup1_cpu  secs
    row "incremental backup CPU (s)"    backup2_cpu  secs
    row "restore CPU (s)"               restore_cpu  secs
    row "repo bytes after first backup" size1        bytes
    printf '| restore verification | %s | %s | %s | | | identical | |\n' \
        "${RES[hashfs:verify]:-n/a}" "${RES[restic:verify]:-n/a}" "${RES[borg:verify]:-n/a}"
    echo
    echo "Ratios below 1 favour hashfs. Targets are described in bench/README.md."
    if [[ -n ${RES[hashfs:stats_stored]:-} ]]; then
        echo
        echo "hashfs \`stats --json\` stored_bytes: ${RES[hashfs:stats_stored]} ($(human_bytes "${RES[hashfs:stats_stored]}"))"
    fi
}

report >"$WORK/results.md"
cp -- "$WORK/results.md" "$SCRIPT_DIR/results-latest.md"
echo
cat "$WORK/results.md"
echo
log "results written to $SCRIPT_DIR/results-latest.md"

# Non-zero exit if a tool failed or a restore does not match (table is printed anyway).
status=0
for t in "${ACTIVE[@]}"; do
    case ${BROKEN[$t]:-}/${RES[$t:verify]:-} in
        /ok | "/content ok;"*) ;;
        *) status=1 ;;
    esac
done
exit "$status"
