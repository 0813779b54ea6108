# Shared by run_parallel.sh and run_pair.sh (sourced, not run): benchmark jobs side by side on one
# multi-GPU machine, each on its own GPU(s), all stopped by one wall-clock deadline.
#
# - TOTAL (--total S, default 510): every job is sent SIGTERM by `timeout` at most S seconds after the
#   driver started, and SIGKILL 20 s later; the scripts write their results and table on SIGTERM.
# - A job's command may contain @BUDGET@: the seconds left until its SIGTERM minus the job's margin
#   (what its script needs to finish the item in flight and write up), given to its budget flag.
# - Files under $OUT (the device tool brings back at most 8, two folders deep): run.log (this
#   driver), one NAME.log per job, and results.tgz, a tar of $WORK (each job's output folder),
#   refreshed every 30 s while the jobs run and once at the end.
# - --dry-run (any machine): installs the wheels into a scratch folder to check that line, then prints
#   each job's environment and command line with its budget, and runs nothing.

T0=$(date +%s)
TOTAL=510
DRY=false
WORK=${ZOO_WORK:-/tmp/zoo_bench}
NAMES=()
declare -A PID GPUS BEGAN ENDED RC

elapsed() { echo $(( $(date +%s) - T0 )); }

parse_args() {
    while [ $# -gt 0 ]; do
        case $1 in
            --dry-run) DRY=true ;;
            --total) TOTAL=$2; shift ;;
            --total=*) TOTAL=${1#--total=} ;;
            *) echo "unknown argument $1 (use --dry-run, --total SECONDS)" >&2; exit 2 ;;
        esac
        shift
    done
}

# Output folder, log, environment and wheels; exits early if the machine has fewer GPUs than needed.
setup() {
    local need_gpus=$1
    if $DRY; then
        OUT=${OUT:-/tmp/zoo_dry_out}
    elif [ -z "${OUT:-}" ]; then
        echo "OUT is not set: run this through the device tool, or pass --dry-run" >&2; exit 2
    fi
    mkdir -p "$OUT"
    exec > >(tee -a "$OUT/run.log") 2>&1
    # NVLink multicast stays off (the machine's rule), also for processes that build their own env
    export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
    export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
    export END_AT=$(( T0 + TOTAL ))  # for jobs that chain commands: left=$(( END_AT - $(date +%s) ))
    local site=/tmp/site
    $DRY && site=/tmp/zoo_dry_site
    echo "[$(elapsed)s] $(git log -1 --format='%h %s' 2>/dev/null | cut -c1-100); total ${TOTAL}s"
    ls .whl/*.whl >/dev/null 2>&1 || { echo "no wheels in .whl/ (pass carry [\".whl\"])"; exit 2; }
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl \
        || { echo "wheel install failed"; exit 2; }
    export PYTHONPATH=$site
    (cd /tmp && python3 -c "import omegaconf, fla, einops; print('wheels ok: omegaconf', omegaconf.__version__, 'fla', fla.__version__)") \
        || { echo "the installed wheels do not import"; exit 2; }
    if $DRY; then
        echo "dry run: OUT=$OUT WORK=$WORK"
        return
    fi
    local have
    have=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
    nvidia-smi -L
    if [ "$have" -lt "$need_gpus" ]; then
        echo "this needs $need_gpus GPUs, the machine has $have: nothing run"; exit 3
    fi
    rm -rf "$WORK"
    mkdir -p "$WORK"
}

# job NAME GPUS MARGIN CMD...: start CMD in the background on GPUS under the deadline.
job() {
    local name=$1 gpus=$2 margin=$3
    shift 3
    local hard=$(( TOTAL - $(elapsed) ))
    local budget=$(( hard - margin ))
    local cmd=("${@//@BUDGET@/$budget}")
    echo "[$(elapsed)s] $name: CUDA_VISIBLE_DEVICES=$gpus, SIGTERM in ${hard}s: ${cmd[*]}"
    NAMES+=("$name")
    GPUS[$name]=$gpus
    $DRY && return
    if [ "$budget" -lt 30 ]; then
        echo "  not started: too little time left"; RC[$name]=skipped; return
    fi
    ( export CUDA_VISIBLE_DEVICES=$gpus; exec timeout -s TERM -k 20 "$hard" "${cmd[@]}" ) > "$OUT/$name.log" 2>&1 &
    PID[$name]=$!
    BEGAN[$name]=$(elapsed)
}

snapshot() {  # tar's exit 1 = a file changed while it was read (a job writing): the archive is still good
    tar -czf "$OUT/results.tgz.part" -C "$WORK" . 2>/dev/null
    [ $? -le 1 ] && mv -f "$OUT/results.tgz.part" "$OUT/results.tgz"
}

# Wait for every job (results.tgz refreshed meanwhile), then the final snapshot.
wait_all() {
    if $DRY; then
        echo "dry run: nothing started"; exit 0
    fi
    local running=1 name last_snap=$(elapsed)
    while [ $running -gt 0 ]; do
        sleep 2
        running=0
        for name in "${NAMES[@]}"; do
            [ -n "${PID[$name]:-}" ] && [ -z "${RC[$name]:-}" ] || continue
            if kill -0 "${PID[$name]}" 2>/dev/null; then
                running=$((running + 1))
            else
                wait "${PID[$name]}"
                RC[$name]=$?
                ENDED[$name]=$(elapsed)
                echo "[$(elapsed)s] $name ended: exit ${RC[$name]}$([ "${RC[$name]}" = 124 ] && echo ' (SIGTERM at the deadline)')"
            fi
        done
        if [ $(( $(elapsed) - last_snap )) -ge 30 ]; then
            snapshot
            last_snap=$(elapsed)
        fi
    done
    snapshot
}

# show TITLE FILE LINES [head|tail]: part of a job's table for the closing summary.
show() {
    local title=$1 file=$2 lines=$3 end=${4:-tail}
    echo "---- $title ($file)"
    if [ -s "$file" ]; then
        "$end" -n "$lines" "$file" | cut -c1-220
    else
        echo "(missing)"
    fi
}

status_lines() {
    local name
    echo "==== summary after $(elapsed)s (files in \$OUT: run.log, NAME.log per job, results.tgz = $WORK) ===="
    for name in "${NAMES[@]}"; do
        echo "$name (GPU ${GPUS[$name]}): exit ${RC[$name]:-?}, from ${BEGAN[$name]:-?}s to ${ENDED[$name]:-?}s"
    done
}
