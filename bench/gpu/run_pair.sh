#!/usr/bin/env bash
# One device call, all done by --total seconds (default 510). Device tool, with carry [".whl"]:
#     bash bench/gpu/run_pair.sh --plan PLAN [--total S]
#     bash bench/gpu/run_pair.sh --plan PLAN --dry-run
# --plan train (1 GPU; kind nvidia-h100-x1 for the H100 the targets name): bench/train.py on zoo
#   DeltaNet, fla DeltaNet, hybrid SWA and Transformer++ at 8x2048 and 4x4096, then zoo DeltaNet
#   through zoo.train's LightningModule + Trainer and the raw step in the same Trainer (issue 5: the
#   target, and where the Lightning path's overhead comes from), each Lightning row with its profile;
# --plan fused (1 GPU): bench/fused_ops.py (the layers' Triton ops: gate, then timings);
# --plan keep (1 GPU): bench/gpu/kernels_ab.sh of kernels/chunk.py against a copy whose backward takes
#   the chunk states and Vn from the forward (TUNING keep_states on by default there): gate and
#   CUDA-graph times of both, into $WORK/keep_states;
# --plan profile (1 GPU): the kernel gate, then bench/check_kernels_gpu.py --only-profile: per-kernel CUDA
#   time of one fwd+bwd of zoo and fla at 8x2048x16x128 and 1x16384x16x128 (issue 3: where the backward
#   loses to fla's), into $WORK/profile;
# --plan ddp (2 GPUs): bench/train.py --ddp --fsdp (1 GPU, 2 GPUs DDP, the rounding control, 2 GPUs
#   FSDP: issue 5 item 5);
# --plan fsdp (2 GPUs): the same with the finished runs taken from bench/results/train.ddp.json
#   (--reuse): what is missing only;
# --plan mqar (2 GPUs): MQAR's long protocol (20k-step schedule, issue 7) through `zoo sweep
#   --workers`, 11 runs at a time in two lanes of grids (MQAR_LANE_A, _B below), into $WORK/mqar_long
#   (seeded with bench/results/mqar_long.jsonl, so finished points are skipped).
# --plan ab_mqar --alt FILE (2 GPUs): GPU 0 bench/gpu/kernels_ab.sh of kernels/chunk.py against FILE (a
#   candidate chunk.py: gate, CUDA-graph times of both, then the full benchmark of the faster) into
#   $WORK/ab; GPU 1 MQAR_LANE_C, 8 runs. The A/B's times are CUDA-graph replays (GPU time only), which
#   the MQAR workers' host load on the other GPU does not reach.
#   No gate before the MQAR lane: it runs the kernels the last mqar call gated (the A/B gates its candidate).
# One plan per call: timing jobs never share the machine with MQAR's workers or with Triton compiles
# on another GPU (their host load slowed the host-bound training rows by up to 2x on 2026-11-27).
set -uo pipefail
cd "$(dirname "$0")/../.."
PLAN=train
ALT=""
args=()
while [ $# -gt 0 ]; do
    case $1 in
        --plan) PLAN=$2; shift ;;
        --alt) ALT=$2; shift ;;
        *) args+=("$1") ;;
    esac
    shift
done
source bench/gpu/lib.sh
parse_args "${args[@]}"
case $PLAN in
    train|fused|keep|profile) setup 1 ;;
    ddp|fsdp|mqar|ab_mqar) setup 2 ;;
    *) echo "unknown plan $PLAN (train, fused, keep, profile, ddp, fsdp, mqar, ab_mqar)"; exit 2 ;;
esac

mkdir -p "$WORK/mqar_long"
cp bench/results/mqar_long.jsonl "$WORK/mqar_long/mqar.jsonl"
# Two lanes of grids, each walked in order by its own `zoo sweep --workers N` on its own GPU, so that
# one grid's last long runs do not idle the other workers, and DeltaNet at d = 512 (two heads of 256,
# fp32) shares its GPU with 2 runs, not 5. One grid per entry, its --grid axes separated by "|" (first
# axis outermost; after "||", more zoo sweep flags). The lr axis goes first: every point's lr 1e-3 runs before any point's 3e-3, and a
# point's other lrs are skipped once one reached the stop accuracy. Finished points are skipped; the
# lanes share no point and append to one results file.
LR="train.lr=1e-3,3e-3,1e-2"
S512="data.seq_len:data.mqar.num_kv_pairs=512:64"
S256="data.seq_len:data.mqar.num_kv_pairs=256:16"
ALL="model.pattern=delta*2,linear*2,linear[feature_map=elu1]*2,gdelta*2,attn*2,delta swa,delta attn,swa*2"
MQAR_LANE_A=(  # GPU 0, 3 runs: d = 512, the target's widest point first; after "||", more zoo sweep flags
    "$LR|$S512|model.d_model:model.n_heads=512:2|model.pattern=delta*2||--rerun time"  # 2,400 steps so far
    "$LR|$S512|model.d_model:model.n_heads=512:2|$ALL"
)
MQAR_LANE_B=(  # GPU 1, 8 runs: the other mixers at the other widths, then seq 256 / 16 pairs
    "$LR|$S512|model.d_model:model.n_heads=256:1,64:1|model.pattern=gdelta*2,attn*2,delta swa,delta attn,swa*2"
    "$LR|$S256|model.d_model:model.n_heads=256:1,64:1,512:2|$ALL"
    "$LR|$S512|model.d_model:model.n_heads=128:1|model.pattern=gdelta[A_max=1,dt_max=0.001]*2"  # slow gates at init
)
MQAR_LANE_C=(  # with the A/B: the hybrids' missing points (d = 512 ran before its kernel fix), then seq 256
    "$LR|$S512|model.d_model:model.n_heads=512:2,128:1|model.pattern=delta swa,delta attn"
    "$LR|$S256|model.d_model:model.n_heads=128:1,64:1,256:1,512:2|$ALL"
)
mqar() {  # mqar WORKERS GRID...: the grids in order until END_AT (minus a margin for the write-up)
    local workers=$1 grid axes left flags
    shift
    for grid in "$@"; do
        left=$(( END_AT - $(date +%s) - 15 ))
        [ $left -lt 60 ] && { echo "no time left for MQAR"; return 0; }
        flags=""
        [[ $grid == *"||"* ]] && { flags=${grid#*||}; grid=${grid%%||*}; }
        axes=()
        IFS='|' read -ra parts <<< "$grid"
        for a in "${parts[@]}"; do axes+=(--grid "$a"); done
        python3 bench/gpu/zoo_cli.py sweep recipes/mqar.yaml train.steps=20000 sweep.max_seconds=420 \
            --out "$WORK/mqar_long/mqar" --workers "$workers" "${axes[@]}" $flags --budget $left
    done
}
export WORK  # the job shells below run mqar() with it

# The chunk kernels' gate first where a plan trains through them (the kernels changed since their last
# GPU check: the fp32 solve's key slices, 2026-11-27): nothing else runs on a failed gate. MQAR trains in
# fp32, so its gate is the fp32 head-dim-256 checks alone (a minute less than the whole gate).
case $PLAN in
    train|profile) $DRY || python3 bench/check_kernels_gpu.py --gate --out "$WORK/gate" \
                    || { echo "kernel gate FAILED: nothing else run"; snapshot; exit 4; } ;;
    mqar) $DRY || python3 bench/check_kernels_gpu.py --gate --gate-fp32 --out "$WORK/gate" \
                    || { echo "kernel gate FAILED: nothing else run"; snapshot; exit 4; } ;;
esac

ROWS="zoo DeltaNet,fla DeltaNet,zoo hybrid SWA,zoo Transformer++,zoo DeltaNet via zoo.train (Lightning),\
zoo DeltaNet raw step in Lightning's Trainer"
case $PLAN in
    train) job train 0 20 python3 bench/train.py --out "$WORK/train" --rows "$ROWS" --budget @BUDGET@ ;;
    fused) job fused 0 20 python3 bench/fused_ops.py --out "$WORK/fused" ;;
    profile) job profile 0 20 python3 bench/check_kernels_gpu.py --only-profile --out "$WORK/profile" \
                 --profile-shapes 8x2048x16x128,1x16384x16x128 ;;
    keep) sed 's/_cfg("keep_states", False)/_cfg("keep_states", True)/' kernels/chunk.py > /tmp/chunk_keep_states.py
          job keep 0 20 bash bench/gpu/kernels_ab.sh /tmp/chunk_keep_states.py "$WORK/keep_states" @BUDGET@ ;;
    ddp) job ddp 0,1 20 python3 bench/train.py --ddp --fsdp --ddp-steps 30 --out "$WORK/ddp" --budget @BUDGET@ ;;
    fsdp) job fsdp 0,1 10 python3 bench/train.py --ddp --fsdp --ddp-steps 30 --out "$WORK/ddp" \
              --reuse bench/results/train.ddp.json --budget @BUDGET@ ;;
    mqar) job mqar_a 0 0 bash -c "$(declare -p MQAR_LANE_A); $(declare -f mqar); mqar 3 \"\${MQAR_LANE_A[@]}\""
          job mqar_b 1 0 bash -c "$(declare -p MQAR_LANE_B); $(declare -f mqar); mqar 8 \"\${MQAR_LANE_B[@]}\"" ;;
    ab_mqar) [ -f "$ALT" ] || { echo "--alt FILE: no candidate chunk.py at '$ALT'"; exit 2; }
          job ab 0 20 bash bench/gpu/kernels_ab.sh "$ALT" "$WORK/ab" @BUDGET@
          job mqar_c 1 0 bash -c "$(declare -p MQAR_LANE_C); $(declare -f mqar); mqar 8 \"\${MQAR_LANE_C[@]}\"" ;;
esac
wait_all

status_lines
show "train: tokens/s" "$WORK/train/train.md" 16
show "fused ops: Triton vs reference" "$WORK/fused/fused_ops.md" 24 head
show "ddp/fsdp: 1 vs 2 GPUs" "$WORK/ddp/train.ddp.md" 16 tail
show "keep_states A/B" "$WORK/keep_states/ab.json" 30 head
show "A/B" "$WORK/ab/ab.json" 40 head
show "mqar long" "$WORK/mqar_long/mqar.md" 40 head
show "kernel profiles" "$OUT/profile.log" 6 tail
