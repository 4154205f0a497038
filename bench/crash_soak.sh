#!/usr/bin/env bash
# Crash soak: kill -9 at hundreds of seeded points of the three write paths,
# checking after each kill that the store opens, `hashfs verify` is clean, the
# head is a commit that existed before the kill (or the new one, complete)
# and every fsync'd or reported-as-committed change is present:
#
#   backup  cli_tests    CliTest.KilledBackupLeavesPreviousHeadIntact
#           a backup of a 40 MiB tree (1-5 files rewritten per round) killed
#           at a random point up to 1.25x a full backup's duration; verify;
#           head = old head, or a new commit whose parent is the old head
#           and which restores to exactly the source; no earlier head lost.
#   mount   fusefs_tests CrashTest.KillDaemonDuringHeavyWritesKeepsEveryFsyncedByte
#           the mount daemon killed 0.4-2 s into 3 writer processes that
#           create/overwrite/append with fsync; lazy unmount, remount: every
#           fsync'd byte present, verify clean, the volume takes writes.
#   mount-ops fusefs_tests CrashTest.KillDuringRandomOperationsLeavesAPrefixOfThem
#           the daemon killed 0.2-2 s into one process applying a seeded
#           random sequence of create/write/truncate/rename/link/unlink/
#           mkdir/rmdir/chmod/xattr/symlink/fsync; remount: the tree equals
#           the state after some prefix of the sequence, no shorter than the
#           last fsync that returned (replayed on the host; the next write
#           may be there in part, page-aligned); verify clean.
#   push    remote_tests RemoteE2E.KillDuringPushThenResume
#           push to the Discord emulator killed after 1-4 creates or 0-1.5 s;
#           verify clean; the resumed push succeeds with no object stored
#           twice; the final clone restores byte-identical.
#
#   bench/crash_soak.sh            # defaults below, about 15 min on 2 busy cores
#   SOAK_BACKUP_KILLS=1000 SOAK_MOUNT_KILLS=100 bench/crash_soak.sh
#
# Environment (all optional):
#   SOAK_BUILD=build        build dir holding tests/{cli,fusefs,remote}_tests
#                           (ninja -C build cli_tests fusefs_tests remote_tests hashfs)
#   SOAK_BACKUP_KILLS=300   backup kill rounds
#   SOAK_MOUNT_KILLS=50     mount daemon kill rounds (needs root and /dev/fuse)
#   SOAK_MOUNT_OPS_KILLS=100  kill rounds under random operations (root, /dev/fuse);
#                           each round's verify re-hashes a store that keeps
#                           every round (about 45 MB each): 100 rounds take
#                           about half an hour, 200 about two hours
#   SOAK_PUSH_KILLS=100     push kill rounds
#   SOAK_SEED=20261201      base seed (each part derives its own; printed)
#   SOAK_ONLY=backup,mount,mount-ops,push   the parts to run
#   SOAK_LOG_DIR=DIR        logs (default: mktemp -d /var/tmp/hashfs-crash-soak.XXXXXX, kept)
#
# Exits non-zero if any part fails; the summary names the seed and the
# command that replays a failing part. Runs everything under `nice`.
set -uo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
case ${1:-} in -h|--help) sed -n '2,46p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;; esac

BUILD=${SOAK_BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$REPO_ROOT/$BUILD
BACKUP_KILLS=${SOAK_BACKUP_KILLS:-300}
MOUNT_KILLS=${SOAK_MOUNT_KILLS:-50}
MOUNT_OPS_KILLS=${SOAK_MOUNT_OPS_KILLS:-100}
PUSH_KILLS=${SOAK_PUSH_KILLS:-100}
SEED=${SOAK_SEED:-20261201}
ONLY=",${SOAK_ONLY:-backup,mount,mount-ops,push},"
LOG_DIR=${SOAK_LOG_DIR:-$(mktemp -d /var/tmp/hashfs-crash-soak.XXXXXX)}
mkdir -p "$LOG_DIR"

summary=()
rc=0
total_start=$SECONDS

# part NAME BINARY FILTER ENV... : runs one gtest under nice with the env.
part() {
  local name=$1 bin=$2 filter=$3
  shift 3
  if [[ $ONLY != *",$name,"* ]]; then
    summary+=("| $name | skipped | | |")
    return
  fi
  if [ ! -x "$BUILD/tests/$bin" ]; then
    summary+=("| $name | **missing** $BUILD/tests/$bin | | |")
    rc=1
    return
  fi
  local log=$LOG_DIR/$name.log start=$SECONDS result detail
  echo "==== $name: $* $bin --gtest_filter=$filter (log: $log)"
  env "$@" nice "$BUILD/tests/$bin" --gtest_filter="$filter" >"$log" 2>&1
  local code=$?
  local secs=$((SECONDS - start))
  if [ $code -eq 0 ] && grep -q '^\[  PASSED  \] 1 test' "$log"; then
    result=pass
  elif grep -q '^\[  SKIPPED \]' "$log"; then
    result="skipped ($(grep -m1 -A1 'Skipped' "$log" | tail -1))"
  else
    result="**FAIL** (exit $code)"
    rc=1
    grep -vE '^\[       OK \]|^\[ RUN      \]' "$log" | tail -60
  fi
  case $name in
    backup) detail=$(grep -ho '\[crash\] [0-9]* rounds.*' "$log" | tail -1) ;;
    mount)
      detail="$(grep -c '^\[crash\] seed' "$log") kills; $(awk '/^\[crash\] seed/ {ops += $(NF-5); bytes += $(NF-2)} END {printf "%d fsyncd operations, %.0f MiB checked", ops, bytes / 1048576}' "$log")"
      ;;
    mount-ops)
      detail="$(grep -c '^\[crash\] random round' "$log") kills; $(awk '/^\[crash\] random round/ {ops += $11} END {printf "%d operations started", ops}' "$log")"
      ;;
    push) detail=$(grep -ho '\[push-kill\].*' "$log" | tail -1) ;;
  esac
  echo "==== $name: $result in ${secs} s; $detail"
  summary+=("| $name | $result | ${secs} s | ${detail} (replay: \`$* $bin --gtest_filter=$filter\`) |")
}

if [ "$(id -u)" != 0 ] && [[ $ONLY == *",mount,"* ]]; then
  echo "note: the mount part needs root; it will skip"
fi

part backup cli_tests 'CliTest.KilledBackupLeavesPreviousHeadIntact' \
  HASHFS_CRASH_ITERATIONS="$BACKUP_KILLS" HASHFS_CRASH_SEED="$SEED"
# The fixture's watchdog must outlast every round (about 5 s each, more on a busy machine).
part mount fusefs_tests 'CrashTest.KillDaemonDuringHeavyWritesKeepsEveryFsyncedByte' \
  HASHFS_CRASH_ITERATIONS="$MOUNT_KILLS" HASHFS_CRASH_SEED="$SEED" \
  HASHFS_FUSE_TEST_TIMEOUT="$((300 + 30 * MOUNT_KILLS))"
part mount-ops fusefs_tests 'CrashTest.KillDuringRandomOperationsLeavesAPrefixOfThem' \
  HASHFS_CRASH_RANDOM_ITERATIONS="$MOUNT_OPS_KILLS" HASHFS_CRASH_SEED="$SEED" \
  HASHFS_FUSE_TEST_TIMEOUT="$((300 + 20 * MOUNT_OPS_KILLS + MOUNT_OPS_KILLS * MOUNT_OPS_KILLS / 4))"
part push remote_tests 'RemoteE2E.KillDuringPushThenResume' \
  HASHFS_PUSH_KILL_ITERATIONS="$PUSH_KILLS" HASHFS_PUSH_KILL_SEED="$SEED"

{
  echo "## Crash soak $(date -u +%Y-%m-%d) (seed $SEED, $(nproc) cores, total $((SECONDS - total_start)) s)"
  echo
  echo "| part | result | time | kills and checks |"
  echo "|---|---|---|---|"
  printf '%s\n' "${summary[@]}"
} | tee "$LOG_DIR/summary.md"
echo "logs: $LOG_DIR"
exit $rc
