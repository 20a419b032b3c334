#!/usr/bin/env bash
# An evaluation sweep on SLURM: one array task per checkpoint, then one merge job for scores and report.
#
#   slurm/eval.sh SPEC [KEY=VALUE | --set KEY=VALUE ...]          # on a login node; NOT through sbatch
#   RLVR_EVAL_SBATCH="-p gpu -A myacct -t 2:00:00" slurm/eval.sh evals/one_shot_rlvr.yaml benchmarks.math500.limit=50
#
# Run from the repository root. The script validates SPEC and resolves its checkpoints
# (`rlvr eval SPEC --list-checkpoints`, no model loaded) before it submits anything, then submits itself
# twice with sbatch:
#   - an array job, one task per checkpoint whose caches are incomplete, each running
#     `rlvr eval SPEC --set ... --checkpoint-index I` with the #SBATCH resources below (one GPU);
#   - a merge job, --dependency=afterany on the array, running `rlvr eval SPEC --set ... --score-only`:
#     OUT/scores.json, OUT/report.md, OUT/plots/. When a task failed it exits 1 listing the missing caches.
# Run it again after a failure: finished checkpoints are skipped and the tasks that do run continue from
# their caches. It prints the job ids, the log files (OUT/slurm/) and where the report will appear.
# Details and every RLVR_* variable: slurm/README.md.

# ---------------------------------------------------------------- 1. resources (one array task)
# Defaults for a GPU cluster. RLVR_EVAL_SBATCH="FLAGS" wins over them (sbatch command-line flags), and
# sbatch's own SBATCH_PARTITION / SBATCH_ACCOUNT / SBATCH_QOS / SBATCH_TIMELIMIT ... apply to both jobs.
# The merge job's resources are set in section 3 (no GPU); RLVR_EVAL_MERGE_SBATCH wins over them.
#SBATCH --job-name=rlvr-eval
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --mem=64G
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --open-mode=append

set -uo pipefail

log() { printf '[eval.sh %(%F %T)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }
USAGE="usage: slurm/eval.sh SPEC [KEY=VALUE | --set KEY=VALUE ...]   (on a login node, from the repository root)"

# ---------------------------------------------------------------- 2. environment
# Role: what this invocation is. The submitter passes `@task LABELS` or `@merge` as the first
# arguments of the jobs it submits (arguments survive any --export setting, unlike variables).
ROLE=submit; LABELS=
case "${1:-}" in
  @task) ROLE=task; LABELS=${2:-}; shift 2 || die "@task needs the submitted labels" ;;
  @merge) ROLE=merge; shift ;;
esac
DRY_RUN=${RLVR_DRY_RUN:-0}          # 1: validate and print the sbatch commands, submit nothing

if [ "$ROLE" = submit ]; then
  cd "${RLVR_WORKDIR:-$PWD}" || die "cannot cd to RLVR_WORKDIR=$RLVR_WORKDIR"
else
  cd "${RLVR_WORKDIR:-${SLURM_SUBMIT_DIR:-$PWD}}" || die "cannot cd to the work directory"
fi
if [ -n "${RLVR_ENV_FILE:-}" ]; then   # site setup (module load, caches on shared storage), as in rlvr.sh
  # shellcheck disable=SC1090
  source "$RLVR_ENV_FILE" || die "RLVR_ENV_FILE=$RLVR_ENV_FILE failed"
fi

[ $# -ge 1 ] || die "$USAGE"
SPEC=$1; shift
[ -f "$SPEC" ] || die "eval spec not found: $SPEC (relative to $PWD)"

# Python: RLVR_PYTHON, else the active virtualenv, else ./.venv, else python3 on PATH.
if [ -n "${RLVR_PYTHON:-}" ]; then PY=$RLVR_PYTHON
elif [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then PY=$VIRTUAL_ENV/bin/python
elif [ -x .venv/bin/python ]; then PY=$PWD/.venv/bin/python
else PY=python3
fi

# Arguments after the spec: KEY=VALUE -> --set KEY=VALUE; --set passes through. The script itself
# decides on --checkpoint-index / --score-only / --list-checkpoints.
ORIG_ARGS=("$@"); SETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --set) [ $# -ge 2 ] || die "--set needs a value"; SETS+=("$1" "$2"); shift 2 ;;
    --set=*) SETS+=("$1"); shift ;;
    --checkpoint-index|--checkpoint-index=*|--score-only|--list-checkpoints)
      die "$1 is chosen by slurm/eval.sh itself (array tasks and the merge job); pass only spec overrides" ;;
    -*) die "unknown option '$1' (pass spec overrides as KEY=VALUE or --set KEY=VALUE; sbatch flags in RLVR_EVAL_SBATCH)" ;;
    *=*) SETS+=(--set "$1"); shift ;;
    *) die "unexpected argument '$1': spec overrides are KEY=VALUE (e.g. benchmarks.math500.limit=50)" ;;
  esac
done
RLVR_EVAL=("$PY" -m rlvr eval "$SPEC" "${SETS[@]}")

# Threads: the task's CPUs (the verifier's workers and torch's intra-op threads).
if [ -z "${OMP_NUM_THREADS:-}" ] && [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then
  export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK
fi

# ---------------------------------------------------------------- 3. launch
if [ "$ROLE" = task ]; then
  # The array index is the checkpoint's position when the sweep was submitted. A run directory that
  # gained exports since then shifts positions, so the task looks its label up in a fresh listing.
  read -ra SUBMITTED <<< "$LABELS"
  I=${SLURM_ARRAY_TASK_ID:?"@task runs as a SLURM array task (SLURM_ARRAY_TASK_ID unset)"}
  LABEL=${SUBMITTED[$I]:-}
  [ -n "$LABEL" ] || die "array task $I: no checkpoint at index $I among the ${#SUBMITTED[@]} submitted"
  LISTING=$("${RLVR_EVAL[@]}" --list-checkpoints) || die "rlvr eval --list-checkpoints failed (see above)"
  INDEX=$(awk -F'\t' -v l="$LABEL" '!/^#/ && $2 == l {print $1; exit}' <<< "$LISTING")
  [ -n "$INDEX" ] || die "checkpoint '$LABEL' (index $I at submission) is no longer in the sweep:"$'\n'"$LISTING"
  [ "$INDEX" = "$I" ] || log "checkpoint '$LABEL' moved from index $I to $INDEX since submission"
  NPROC=${RLVR_NPROC_PER_NODE:-1}   # >1: torchrun splits the requests over NPROC ranks (one per GPU)
  [[ "$NPROC" =~ ^[1-9][0-9]*$ ]] || die "RLVR_NPROC_PER_NODE must be a positive integer, got '$NPROC'"
  CMD=("${RLVR_EVAL[@]}" --checkpoint-index "$INDEX")
  if [ "$NPROC" -gt 1 ]; then
    CMD=("$PY" -m torch.distributed.run --standalone --nproc_per_node "$NPROC" "${CMD[@]:1}")
  fi
  log "job ${SLURM_ARRAY_JOB_ID:-?}_$I on $(hostname): checkpoint $INDEX '$LABEL'"
  log "launch: $(printf '%q ' "${CMD[@]}")"
  exec "${CMD[@]}"
fi

if [ "$ROLE" = merge ]; then
  log "job ${SLURM_JOB_ID:-?} on $(hostname): scoring every cache (generates nothing)"
  "${RLVR_EVAL[@]}" --score-only; RC=$?
  if [ "$RC" -ne 0 ]; then
    log "ERROR: the merge failed (rlvr eval exit $RC). If caches are missing (listed above), an array task" \
        "failed: see its log, then run again: slurm/eval.sh $(printf '%q ' "$SPEC" "${ORIG_ARGS[@]}")" \
        "(only the checkpoints still missing are submitted)"
  fi
  exit "$RC"
fi

# Submit: validate and resolve first; nothing is submitted for a bad spec.
if [ "$DRY_RUN" != 1 ] && ! command -v sbatch >/dev/null 2>&1; then
  die "sbatch not found on PATH: run slurm/eval.sh on a SLURM login node (RLVR_DRY_RUN=1 prints the commands)"
fi
LISTING=$("${RLVR_EVAL[@]}" --list-checkpoints) || die "the spec did not validate (see above); nothing was submitted"
OUT=$(sed -n '1s/^# name=.* checkpoints=[0-9]* out=//p' <<< "$LISTING")
NAME=$(sed -n '1s/^# name=\([^ ]*\) .*/\1/p' <<< "$LISTING")
if [ -z "$OUT" ] || [ -z "$NAME" ]; then die "unexpected output of rlvr eval --list-checkpoints:"$'\n'"$LISTING"; fi
ALL=(); TODO=()
while IFS=$'\t' read -r idx label missing _path; do
  [[ "$idx" == \#* ]] && continue
  ALL+=("$label")
  [ "$missing" -gt 0 ] && TODO+=("$idx")
done <<< "$LISTING"
LOG_DIR=${RLVR_EVAL_LOG_DIR:-$OUT/slurm}
SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
read -ra TASK_FLAGS <<< "${RLVR_EVAL_SBATCH:-}"
read -ra MERGE_FLAGS <<< "${RLVR_EVAL_MERGE_SBATCH:-}"
JOB_ARGS=("$SPEC" "${SETS[@]}")

ARRAY=$(IFS=,; echo "${TODO[*]}")${RLVR_EVAL_MAX_PARALLEL:+%$RLVR_EVAL_MAX_PARALLEL}
SUBMIT_ARRAY=(sbatch --parsable --array="$ARRAY" --output="$LOG_DIR/%x-%A_%a.out"
  "${TASK_FLAGS[@]}" "$SELF" @task "${ALL[*]}" "${JOB_ARGS[@]}")
SUBMIT_MERGE=(sbatch --parsable --job-name=rlvr-eval-merge --nodes=1 --ntasks-per-node=1 --gpus-per-node=0
  --cpus-per-task=8 --mem=16G --time=01:00:00 --no-requeue --output="$LOG_DIR/%x-%j.out"
  "${MERGE_FLAGS[@]}" "$SELF" @merge "${JOB_ARGS[@]}")

log "sweep $NAME: ${#ALL[@]} checkpoint(s), ${#TODO[@]} with caches to generate${TODO[*]:+ (indices $ARRAY)}; out $OUT"
if [ "$DRY_RUN" = 1 ]; then
  if [ "${#TODO[@]}" -gt 0 ]; then
    printf '%q ' "${SUBMIT_ARRAY[@]}"; echo
    printf '%q ' "${SUBMIT_MERGE[@]:0:2}" --dependency=afterany:ARRAY_JOB "${SUBMIT_MERGE[@]:2}"; echo
  else
    printf '%q ' "${SUBMIT_MERGE[@]}"; echo
  fi
  exit 0
fi
mkdir -p "$LOG_DIR" || die "cannot create the log directory $LOG_DIR"
ARRAY_JOB=
if [ "${#TODO[@]}" -gt 0 ]; then
  ARRAY_JOB=$("${SUBMIT_ARRAY[@]}") || die "sbatch of the array failed (see above); nothing was submitted"
  ARRAY_JOB=${ARRAY_JOB%%;*}
  log "array job $ARRAY_JOB: ${#TODO[@]} task(s), logs $LOG_DIR/rlvr-eval-${ARRAY_JOB}_<index>.out"
  SUBMIT_MERGE=("${SUBMIT_MERGE[@]:0:2}" --dependency=afterany:"$ARRAY_JOB" "${SUBMIT_MERGE[@]:2}")
else
  log "every checkpoint's caches are complete: only the merge job is submitted"
fi
# afterany, not afterok: after a failed task the merge still runs, and its log lists what is missing
# (with afterok it would wait forever as DependencyNeverSatisfied).
MERGE_JOB=$("${SUBMIT_MERGE[@]}")
if [ -z "$MERGE_JOB" ]; then
  [ -n "$ARRAY_JOB" ] && scancel "$ARRAY_JOB"
  die "sbatch of the merge job failed (see above)${ARRAY_JOB:+; array job $ARRAY_JOB cancelled}"
fi
MERGE_JOB=${MERGE_JOB%%;*}
log "merge job $MERGE_JOB${ARRAY_JOB:+ (after array job $ARRAY_JOB)}: log $LOG_DIR/rlvr-eval-merge-$MERGE_JOB.out"
log "report: $OUT/report.md, scores $OUT/scores.json, plots $OUT/plots/ once job $MERGE_JOB ends;" \
    "watch: squeue -j ${ARRAY_JOB:+$ARRAY_JOB,}$MERGE_JOB"
printf 'OUT=%s\nARRAY_JOB=%s\nMERGE_JOB=%s\nREPORT=%s\n' "$OUT" "$ARRAY_JOB" "$MERGE_JOB" "$OUT/report.md"
