#!/usr/bin/env bash
# Call 2 on a 4-GPU machine (nvidia-h100-x4), all done by --total seconds (default 510). Device tool,
# with carry [".whl"]:
#     bash bench/gpu/run_pair.sh
#     bash bench/gpu/run_pair.sh --dry-run
# GPU0+1 bench/train.py --ddp --fsdp (zoo train on 1 GPU, 2 GPUs DDP, the 1-GPU rounding control,
#   then 2 GPUs FSDP: issue 5 item 5);
# GPU2 bench/fused_ops.py (the layers' Triton ops: gate, then timings vs their references), then
#   bench/train.py on the two zoo DeltaNet rows with a profile of the Lightning path (its unexplained
#   1.5x overhead on 2026-11-27);
# GPU3 MQAR past the grid's cap (bench/gpu/mqar_long.sh): linear attention d=128 and d=64 and
#   DeltaNet d=64 at lr 3e-3 — the comparison issue 7 asks for, at a budget where DeltaNet learns.
set -uo pipefail
cd "$(dirname "$0")/../.."
source bench/gpu/lib.sh
parse_args "$@"
setup 4

job ddp 0,1 20 python3 bench/train.py --ddp --fsdp --ddp-steps 30 --out "$WORK/ddp" --budget @BUDGET@
job fused 2 20 bash -c "python3 bench/fused_ops.py --out $WORK/fused; python3 bench/train.py --out $WORK/train \
    --rows 'zoo DeltaNet,zoo DeltaNet via zoo.train (Lightning)' --budget \$(( END_AT - \$(date +%s) - 20 ))"
job mqar 3 20 bash -c "set -f; for run in 'linear*2 128' 'delta*2 64' 'linear*2 64'; do set -- \$run;
    bash bench/gpu/mqar_long.sh 3e-3 $WORK/mqar_long_\$2_\${1%\*2} \$1 \$2; done"
wait_all

status_lines
show "fused ops: Triton vs reference" "$WORK/fused/fused_ops.md" 24 head
show "train: zoo DeltaNet, raw and through Lightning" "$WORK/train/train.md" 12
show "ddp/fsdp: 1 vs 2 GPUs" "$WORK/ddp/train.ddp.md" 16 tail
for d in "$WORK"/mqar_long_*; do show "mqar long $(basename "$d")" "$d/mqar.md" 4 tail; done
