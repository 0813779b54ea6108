#!/usr/bin/env bash
# One MQAR run longer than the grid's 90-s cap: seq 512 / 64 pairs, up to 20k steps, capped at what is
# left of the call (END_AT, from lib.sh) minus a margin:
#     bash bench/gpu/mqar_long.sh LR DIR [PATTERN [D_MODEL]]     # default delta*2 at d_model 128
# Results under DIR/mqar.{jsonl,json,md,png}. (The grid's cap, 5k steps, left DeltaNet d=64 and d=128
# at chance at all three lrs on an H100 and an H200; given 20k steps d=128 solved the task in 4.75k to
# 9.25k, bench/results/mqar_long.md.)
set -uo pipefail
cd "$(dirname "$0")/../.."
LR=$1 DIR=$2 PATTERN=${3:-delta*2} D=${4:-128}
left=$(( END_AT - $(date +%s) - 25 ))
if [ $left -lt 60 ]; then echo "no time left for MQAR $PATTERN d=$D lr $LR"; exit 0; fi
exec python3 bench/gpu/zoo_cli.py sweep recipes/mqar.yaml --grid "model.pattern=$PATTERN" \
    --grid "model.d_model:model.n_heads=$D:1" data.seq_len=512 data.mqar.num_kv_pairs=64 "train.lr=$LR" \
    train.steps=20000 "sweep.max_seconds=$(( left - 15 ))" --out "$DIR/mqar" --budget "$left"
