#!/usr/bin/env bash
# rlvr on SLURM: one torchrun agent per node (srun), one rank per GPU, c10d rendezvous, DeepSpeed inside.
#
#   sbatch slurm/rlvr.sh RECIPE [KEY=VALUE | --set KEY=VALUE | --from-stage NAME ...]
#   sbatch -N4 -t 2-00:00:00 slurm/rlvr.sh recipes/one_shot.yaml stages.rl.max_steps=500
#
# Run from the repository root. Every #SBATCH line below is a GPU-cluster default; flags given to
# sbatch on the command line win. Extra words after the recipe: KEY=VALUE becomes `--set KEY=VALUE`;
# `--set KEY=VALUE` and `--from-stage NAME` pass through unchanged. The run directory is
# runs/<recipe file name>-<job id> (RLVR_RUN_DIR overrides); it stays the same across requeues, and a
# restarted job (or one whose run directory already holds a run) continues it with --resume.
# Preemption / time limit: SLURM sends SIGUSR1 to this script (B:USR1) 10 minutes before the end; the
# ranks checkpoint at their next step boundary, and the job requeues itself and resumes.
# Details and every RLVR_* variable: slurm/README.md.

# ---------------------------------------------------------------- 1. resources (GPU-cluster defaults)
#SBATCH --job-name=rlvr
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --mem=0
#SBATCH --time=24:00:00
#SBATCH --signal=B:USR1@600
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=%x-%j.out

set -uo pipefail

log() { printf '[rlvr.sh %(%F %T)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }

# ---------------------------------------------------------------- 2. environment
DRY_RUN=${RLVR_DRY_RUN:-0}          # 1: print the launch command and exit (no SLURM needed)
if [ -z "${SLURM_JOB_ID:-}" ] && [ "$DRY_RUN" != 1 ]; then
  die "not inside a SLURM job: submit with 'sbatch slurm/rlvr.sh RECIPE ...' (or RLVR_DRY_RUN=1 to print the command)"
fi
JOB_ID=${SLURM_JOB_ID:-0}
NNODES=${SLURM_NNODES:-1}
RESTARTS=${SLURM_RESTART_COUNT:-0}
cd "${RLVR_WORKDIR:-${SLURM_SUBMIT_DIR:-$PWD}}" || die "cannot cd to the work directory"
# Site setup (module load, caches on shared storage, NCCL settings): a file sourced here, if named.
# vLLM runs one independent engine per rank (docs/generation.md): no gloo traffic per engine step, only
# once at engine start (vLLM's gloo groups and one memory all-reduce). Set GLOO_SOCKET_IFNAME there only
# if gloo's default interface cannot reach the other nodes.
if [ -n "${RLVR_ENV_FILE:-}" ]; then
  # shellcheck disable=SC1090
  source "$RLVR_ENV_FILE" || die "RLVR_ENV_FILE=$RLVR_ENV_FILE failed"
fi

[ $# -ge 1 ] || die "usage: sbatch slurm/rlvr.sh RECIPE [KEY=VALUE | --set KEY=VALUE | --from-stage NAME ...]"
RECIPE=$1; shift
[ -f "$RECIPE" ] || die "recipe not found: $RECIPE (relative to $PWD)"

# Python: RLVR_PYTHON, else the active virtualenv, else ./.venv, else python3 on PATH.
if [ -n "${RLVR_PYTHON:-}" ]; then PY=$RLVR_PYTHON
elif [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then PY=$VIRTUAL_ENV/bin/python
elif [ -x .venv/bin/python ]; then PY=$PWD/.venv/bin/python
else PY=python3
fi

# Ranks per node: RLVR_NPROC_PER_NODE, else the node's GPUs when a CUDA driver is really present
# (nvidia-smi answers), else 1. Slurm's GPU count alone is not trusted: a CPU machine with GRES "gpu"
# (CI's fake GPUs) would otherwise start one CPU rank per fake GPU. On CPU one rank per node uses
# the task's cores through intra-op threads. The nodes of a job are assumed alike.
cuda_present() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }
# shellcheck disable=SC2086  # split "0,1,2" on commas -> 3
count_list() { local IFS=,; set -- $1; echo $#; }
if [ -n "${RLVR_NPROC_PER_NODE:-}" ]; then NPROC=$RLVR_NPROC_PER_NODE
elif cuda_present; then
  if [ "${SLURM_GPUS_ON_NODE:-0}" -gt 0 ] 2>/dev/null; then NPROC=$SLURM_GPUS_ON_NODE
  elif [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then NPROC=$(count_list "$CUDA_VISIBLE_DEVICES")
  else NPROC=$(nvidia-smi -L | grep -c '^GPU')
  fi
else NPROC=1
fi
[[ "$NPROC" =~ ^[1-9][0-9]*$ ]] || die "ranks per node must be a positive integer, got '$NPROC' (RLVR_NPROC_PER_NODE)"

# Threads per rank: the task's CPUs shared among its ranks (torchrun would otherwise say 1).
if [ -z "${OMP_NUM_THREADS:-}" ] && [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then
  OMP_NUM_THREADS=$(( SLURM_CPUS_PER_TASK / NPROC > 0 ? SLURM_CPUS_PER_TASK / NPROC : 1 ))
  export OMP_NUM_THREADS
fi

# Rendezvous: the first host of the allocation hosts the c10d store on a port derived from the job
# id, so a requeued job (same id) gets the same endpoint. RLVR_MASTER_PORT overrides the port.
if [ -n "${SLURM_JOB_NODELIST:-}" ]; then
  MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)
else
  MASTER_ADDR=$(hostname)
fi
MASTER_PORT=${RLVR_MASTER_PORT:-$(( 20000 + JOB_ID % 20000 ))}
export MASTER_ADDR MASTER_PORT

# The run directory: stable across requeues; an existing run there is continued.
RECIPE_STEM=$(basename "$RECIPE"); RECIPE_STEM=${RECIPE_STEM%.*}
RUN_DIR=${RLVR_RUN_DIR:-runs/$RECIPE_STEM-$JOB_ID}

# Arguments after the recipe: KEY=VALUE -> --set KEY=VALUE; --set/--from-stage pass through.
RLVR_ARGS=(); FROM_STAGE=()
while [ $# -gt 0 ]; do
  case "$1" in
    --set)
      [ $# -ge 2 ] || die "$1 needs a value"
      RLVR_ARGS+=("$1" "$2"); shift 2 ;;
    --from-stage)
      [ $# -ge 2 ] || die "$1 needs a value"
      FROM_STAGE=("$1" "$2"); shift 2 ;;
    --set=*) RLVR_ARGS+=("$1"); shift ;;
    --from-stage=*) FROM_STAGE=("$1"); shift ;;
    --resume) shift ;;   # decided here (see below); accepted for convenience
    --run-dir|--run-dir=*) die "set the run directory with RLVR_RUN_DIR=DIR (sbatch --export=ALL,RLVR_RUN_DIR=DIR ...), not --run-dir" ;;
    -*) die "unknown option '$1' (pass recipe overrides as KEY=VALUE or --set KEY=VALUE)" ;;
    *=*) RLVR_ARGS+=(--set "$1"); shift ;;
    *) die "unexpected argument '$1': recipe overrides are KEY=VALUE (e.g. stages.sft.max_steps=100)" ;;
  esac
done
RESUME=()
if [ "$RESTARTS" -gt 0 ] || [ -f "$RUN_DIR/summary.json" ]; then RESUME=(--resume); fi
# A restarted job drops --from-stage: its first attempt already carried the earlier stages over, and
# plain --resume then skips every finished stage (with --from-stage it would redo the later ones).
if [ "$RESTARTS" -gt 0 ]; then FROM_STAGE=(); fi

# Preemption: how long the ranks get to reach a step boundary and checkpoint after SIGUSR1 (keep it
# below the --signal lead time), and how long they get to exit after CHECKPOINT_DONE appears.
CHECKPOINT_WAIT_S=${RLVR_CHECKPOINT_WAIT_S:-540}
EXIT_GRACE_S=${RLVR_EXIT_GRACE_S:-60}

SIGNALS=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1   # torchrun forwards these; without USR1 a stray
                                                 # USR1 to the step kills the agents, orphaning ranks
LAUNCH=("$PY" -m torch.distributed.run
  --nnodes "$NNODES" --nproc_per_node "$NPROC"
  --rdzv_backend c10d --rdzv_endpoint "$MASTER_ADDR:$MASTER_PORT" --rdzv_id "$JOB_ID"
  --max_restarts 0 --signals_to_handle "$SIGNALS" --shutdown_timeout "$CHECKPOINT_WAIT_S"
  -m rlvr run "$RECIPE" "${RLVR_ARGS[@]}" "${FROM_STAGE[@]}" --run-dir "$RUN_DIR" "${RESUME[@]}")
SRUN=(srun --nodes "$NNODES" --ntasks "$NNODES" --ntasks-per-node 1 --kill-on-bad-exit=1)

if [ "$DRY_RUN" = 1 ]; then
  printf 'RUN_DIR=%s\nNPROC=%s\nMASTER=%s:%s\n' "$RUN_DIR" "$NPROC" "$MASTER_ADDR" "$MASTER_PORT"
  printf '%q ' "${SRUN[@]}" "${LAUNCH[@]}"; echo
  exit 0
fi

log "job $JOB_ID (restart $RESTARTS) on $NNODES node(s) [${SLURM_JOB_NODELIST:-}], $NPROC rank(s)/node," \
    "rendezvous $MASTER_ADDR:$MASTER_PORT, run dir $RUN_DIR${RESUME:+ (resuming)}"
log "launch: $(printf "%q " "${SRUN[@]}" "${LAUNCH[@]}")"

# ---------------------------------------------------------------- 3. launch
# srun runs in the background and the script waits, so the USR1 trap runs as soon as SLURM signals
# (a trap does not run while bash waits for a foreground command).
PREEMPT_AT=

# shellcheck disable=SC2317  # invoked by the trap
on_usr1() {
  [ -n "$PREEMPT_AT" ] && return 0
  PREEMPT_AT=$SECONDS
  log "SIGUSR1: asking the ranks to checkpoint at the next step boundary ($RUN_DIR/CHECKPOINT_REQUEST)"
  mkdir -p "$RUN_DIR" && touch "$RUN_DIR/CHECKPOINT_REQUEST"
}
trap on_usr1 USR1

mkdir -p "$RUN_DIR"
rm -f "$RUN_DIR/CHECKPOINT_DONE" "$RUN_DIR/CHECKPOINT_REQUEST"   # an earlier attempt's, never ours
# shellcheck disable=SC2016  # expanded on each node, not here
"${SRUN[@]}" bash -c 'echo "[rlvr.sh] node $(hostname): torchrun agent $SLURM_NODEID of $SLURM_NNODES" >&2; exec "$@"' \
  rlvr-node "${LAUNCH[@]}" &
SRUN_PID=$!

# Wait for the step. `wait` returns early (>128) when the USR1 trap runs; the step is then still
# alive and the loop goes on waiting, or, once a checkpoint was requested, polls with a deadline.
ENDED=0
while :; do
  wait "$SRUN_PID"; RC=$?
  kill -0 "$SRUN_PID" 2>/dev/null || { ENDED=1; break; }   # the step ended; RC is its exit status
  [ -z "$PREEMPT_AT" ] || break
done
DONE_AT=
while [ "$ENDED" = 0 ]; do                          # only when preempting and the step still runs
  if ! kill -0 "$SRUN_PID" 2>/dev/null; then wait "$SRUN_PID"; RC=$?; break; fi
  if [ -z "$DONE_AT" ] && [ -e "$RUN_DIR/CHECKPOINT_DONE" ]; then
    DONE_AT=$SECONDS; log "ranks checkpointed: $(cat "$RUN_DIR/CHECKPOINT_DONE" 2>/dev/null)"
  elif [ -z "$DONE_AT" ] && [ ! -e "$RUN_DIR/CHECKPOINT_REQUEST" ]; then
    touch "$RUN_DIR/CHECKPOINT_REQUEST"   # a run that was still starting cleared it (preempt.clear)
  fi
  if [ $(( SECONDS - PREEMPT_AT )) -ge "$CHECKPOINT_WAIT_S" ] \
     || { [ -n "$DONE_AT" ] && [ $(( SECONDS - DONE_AT )) -ge "$EXIT_GRACE_S" ]; }; then
    log "the ranks are still running $(( SECONDS - PREEMPT_AT ))s after the request; requeueing anyway"
    RC=timeout; break
  fi
  sleep 0.5 & wait $!
done

if [ "$RC" = 0 ]; then
  rm -f "$RUN_DIR/CHECKPOINT_REQUEST"    # a request that came too late: the run had finished
  log "run finished: $RUN_DIR"
  exit 0
fi
if [ -n "$PREEMPT_AT" ] || [ -e "$RUN_DIR/CHECKPOINT_DONE" ]; then
  if [ -e "$RUN_DIR/CHECKPOINT_DONE" ]; then
    log "checkpointed ($(cat "$RUN_DIR/CHECKPOINT_DONE")); requeueing job $JOB_ID" \
        "(the ranks' exit status 75 above means 'checkpointed, continue later', not a failure)"
  else
    log "no checkpoint acknowledged; requeueing job $JOB_ID to resume from the newest periodic checkpoint"
  fi
  scontrol requeue "$JOB_ID" || { log "ERROR: scontrol requeue failed (was the job submitted with --no-requeue?)"; exit 75; }
  exit 0
fi
log "ERROR: the run failed (srun exit $RC); see the rank errors above"
exit "$RC"
