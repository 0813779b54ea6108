#!/usr/bin/env bash
# Call 1 on a 4-GPU machine (nvidia-h100-x4): four benchmarks at once, one per GPU, all done by
# --total seconds (default 510) after start. Device tool, with carry [".whl"]:
#     bash bench/gpu/run_parallel.sh
#     bash bench/gpu/run_parallel.sh --dry-run     # anywhere: check the wheels, print the commands
# GPU0 bench/kernels.py (issue 3); GPU1 bench/train.py (340M tokens/s, zoo vs fla, T=2048/4096:
# issue 5); GPU2 and GPU3 bench/mqar.py, different stages (issue 7). Margins (third job argument)
# and why: lib.sh and the scripts' docstrings. (Earlier calls ran bench/generate.py and
# bench/check_fla_interop.py here; see bench/results/gpu_2026-11-27.md.)
set -uo pipefail
cd "$(dirname "$0")/../.."
source bench/gpu/lib.sh
parse_args "$@"
setup 4

# kernels: its gates (bf16 values and gradients vs the fp32 reference) come first; its budget only
# stops new timings; fla's gated autotune (~100 s) may run past it. With a
# candidate .gpu_fallback/chunk_alt.py (git-ignored, carried), an A/B against kernels/chunk.py first,
# and the full benchmark from the faster (bench/gpu/kernels_ab.sh)
if [ -f .gpu_fallback/chunk_alt.py ]; then
    job kernels 0 60 bash bench/gpu/kernels_ab.sh .gpu_fallback/chunk_alt.py "$WORK/kernels" @BUDGET@
else
    job kernels 0 60 python3 bench/kernels.py --out "$WORK/kernels" --budget-s @BUDGET@
fi
# train: a row starts only if the same model's last row (compile included) fits in what is left
job train 1 20 python3 bench/train.py --out "$WORK/train" --budget @BUDGET@
# mqar (issue 7), two GPUs: stage 4 (d_model 64 first, where a 64-pair state is tight) on GPU2;
# stage 6 (MAD: what is left) then stage 2 on GPU3. A run still going at the budget is cut and
# recorded as cut; merge both folders' new records into bench/results afterwards.
job mqar 2 15 python3 bench/mqar.py --out "$WORK/mqar" --stages 4 --budget @BUDGET@
job mad 3 15 python3 bench/mqar.py --out "$WORK/mad" --stages 6,2 --budget @BUDGET@
wait_all

status_lines
show "kernels: training + decode timings" "$OUT/kernels.log" 24
show "mqar: records" "$OUT/mqar.log" 14
show "mad + stage 2: records" "$OUT/mad.log" 14
show "train: 340M tokens/s (issue 5)" "$WORK/train/train.md" 30
