#!/usr/bin/env bash
# Call 2 on a 4-GPU machine (nvidia-h100-x4), all done by --total seconds (default 510). Device tool,
# with carry [".whl"]:
#     bash bench/gpu/run_pair.sh [--mqar-stages 1,6]
#     bash bench/gpu/run_pair.sh --dry-run
# GPU0+1 bench/train.py --ddp (zoo train on 1 GPU, then 2 GPUs DDP: issue 5 item 5);
# GPU2 bench/check_fla_interop.py, the last two cases (fla autotunes: it gets the whole window);
# GPU3 bench/generate.py (decode against context, fla timed per token: issue 6). Copy call 1's
# mqar.jsonl to bench/results/ first and pass --mqar-stages 1,6 to run MQAR on GPU3 instead.
set -uo pipefail
cd "$(dirname "$0")/../.."
STAGES=
args=()
while [ $# -gt 0 ]; do
    case $1 in
        --mqar-stages) STAGES=$2; shift ;;
        *) args+=("$1") ;;
    esac
    shift
done
source bench/gpu/lib.sh
parse_args ${args[@]+"${args[@]}"}
setup 4

# ddp: each run gets at most what is left (the 1-GPU run at most 60% of it); results after each run
job ddp 0,1 20 python3 bench/train.py --ddp --ddp-steps 40 --out "$WORK/ddp" --budget @BUDGET@
# interop: a case starts only if the previous case's time fits; the first includes fla's autotune
job interop 2 20 python3 bench/check_fla_interop.py --out "$WORK/interop" --budget @BUDGET@ \
    --cases gated_deltanet_hybrid,deltanet_gate_expand_tied
if [ -n "$STAGES" ]; then
    # mqar/MAD: a run still going at the budget is cut and recorded as cut (rerun next time)
    job mqar 3 15 python3 bench/mqar.py --out "$WORK/mqar" --stages "$STAGES" --budget @BUDGET@
else
    # generate: per-context budget checks; a context at batch 64 / 64K can take ~20 s
    job generate 3 30 python3 bench/generate.py --out "$WORK/generate" --budget @BUDGET@
fi
wait_all

status_lines
[ -n "$STAGES" ] && show "mqar stages $STAGES: records" "$OUT/mqar.log" 16
[ -z "$STAGES" ] && show "generate: decode tokens/s against context" "$WORK/generate/generate.md" 22 head
show "interop: fla 0.6.0 -> zoo" "$WORK/interop/fla_interop.md" 30 head
show "ddp: 1 vs 2 GPUs" "$WORK/ddp/train.ddp.md" 45
