#!/usr/bin/env bash
# Call 2 on a 4-GPU machine (nvidia-h100-x4), all done by --total seconds (default 510). Device tool,
# with carry [".whl"]:
#     bash bench/gpu/run_pair.sh
#     bash bench/gpu/run_pair.sh --dry-run
# GPU0+1 bench/train.py --ddp (zoo train on 1 GPU, 2 GPUs DDP, and the 1-GPU rounding control:
#   issue 5 item 5), then MQAR DeltaNet d=128 runs longer than the grid's 90-s cap (lr 1e-3, 1e-2);
# GPU2 bench/fused_ops.py (the layers' Triton ops: gate, then timings vs their references), then
#   bench/train.py (340M tokens/s vs fla: issue 5);
# GPU3 bench/check_fla_interop.py, all five cases with fla's autotune at its first config (issue 8),
#   then the longer MQAR run at lr 3e-3 (issue 7).
set -uo pipefail
cd "$(dirname "$0")/../.."
source bench/gpu/lib.sh
parse_args "$@"
setup 4

# GPU0+1: DDP keeps 230 s of the call for the two MQAR runs after it
job ddp 0,1 20 bash -c "python3 bench/train.py --ddp --ddp-steps 30 --out $WORK/ddp --ddp-share 0.4 \
    --budget \$(( END_AT - \$(date +%s) - 230 )); CUDA_VISIBLE_DEVICES=0 bash bench/gpu/mqar_long.sh 1e-3 $WORK/mqar_long_1e-3 &
    CUDA_VISIBLE_DEVICES=1 bash bench/gpu/mqar_long.sh 1e-2 $WORK/mqar_long_1e-2; wait"
# GPU2: the fused ops' gate and timings, then the training benchmark (a failing op fails its rows only)
job fused 2 20 bash -c "python3 bench/fused_ops.py --out $WORK/fused; python3 bench/train.py --out $WORK/train \
    --budget \$(( END_AT - \$(date +%s) - 20 ))"
# GPU3: interop (first-config autotune: ~1 min per case), then MQAR at lr 3e-3
job interop 3 20 bash -c "python3 bench/check_fla_interop.py --out $WORK/interop --budget 240; \
    bash bench/gpu/mqar_long.sh 3e-3 $WORK/mqar_long_3e-3"
wait_all

status_lines
show "fused ops: Triton vs reference" "$WORK/fused/fused_ops.md" 24 head
show "interop: fla 0.6.0 -> zoo" "$WORK/interop/fla_interop.md" 12 head
show "train: 340M tokens/s (issue 5)" "$WORK/train/train.md" 24
show "ddp: 1 vs 2 GPUs" "$WORK/ddp/train.ddp.md" 30
for lr in 1e-3 3e-3 1e-2; do show "mqar long lr $lr" "$WORK/mqar_long_$lr/mqar.md" 4 tail; done
