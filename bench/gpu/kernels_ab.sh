#!/usr/bin/env bash
# A/B of two versions of kernels/chunk.py on one GPU, then the full kernel benchmark on the faster:
#     bash bench/gpu/kernels_ab.sh ALT_CHUNK_PY OUTDIR BUDGET_S
# A is this checkout; B is a copy of it (/tmp/zoo_alt) with kernels/chunk.py replaced by ALT_CHUNK_PY.
# Each is gated (bench/check_kernels_gpu.py --gate: real-shape bf16 values and gradients) and timed
# by CUDA-graph replay at DESIGN §9's shapes (bench/kernels.py --ops: zoo's two chunk ops only).
# B is chosen only if it passes its gate and its plain fwd+bwd graph time, summed over the shapes,
# is lower. OUTDIR/ab.json records both; bench/kernels.py then runs in full from the chosen copy,
# with what is left of BUDGET_S, into OUTDIR.
set -uo pipefail
cd "$(dirname "$0")/../.."
ALT=$1 DIR=$2 BUDGET=$3
T0=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
mkdir -p "$DIR/a" "$DIR/b"
rm -rf /tmp/zoo_alt && mkdir -p /tmp/zoo_alt && cp -r bench kernels zoo eval recipes /tmp/zoo_alt/ && cp "$ALT" /tmp/zoo_alt/kernels/chunk.py
OPS=zoo.chunk_delta_rule,zoo.chunk_gated_delta_rule
python3 bench/kernels.py --skip gates,decode,recurrent,late --ops $OPS --out "$DIR/a" --budget-s 120 > "$DIR/a/log" 2>&1
if python3 /tmp/zoo_alt/bench/check_kernels_gpu.py --gate --out "$DIR/b" > "$DIR/b/gate.log" 2>&1; then GATE_B=pass; else GATE_B=fail; fi
[ $GATE_B = pass ] && python3 /tmp/zoo_alt/bench/kernels.py --skip gates,decode,recurrent,late --ops $OPS --out "$DIR/b" --budget-s 120 > "$DIR/b/log" 2>&1
ROOT=$(python3 - "$DIR" "$GATE_B" <<'PY'
import json, sys
from pathlib import Path
d, gate_b = Path(sys.argv[1]), sys.argv[2]
def rows(side):
    f = d / side / "kernels.json"
    return {(r["op"], "x".join(map(str, r["shape"]))): r for r in json.loads(f.read_text())["training"]} if f.exists() else {}
a, b = rows("a"), rows("b")
def total(r, op):
    ts = [v.get("graph_fwdbwd_ms") for (o, _), v in r.items() if o == op]
    return sum(ts) if ts and all(ts) else None
ta, tb = total(a, "zoo.chunk_delta_rule"), total(b, "zoo.chunk_delta_rule")
pick_b = gate_b == "pass" and ta is not None and tb is not None and tb < ta
res = {"gate_b": gate_b, "sum_graph_fwdbwd_ms": {"a": ta, "b": tb}, "chosen": "b" if pick_b else "a", "rows": []}
for key in sorted(set(a) | set(b)):
    ra, rb = a.get(key, {}), b.get(key, {})
    res["rows"].append({"op": key[0], "shape": key[1], **{f"{s}_{m}": r.get(f"graph_{m}_ms") for s, r in (("a", ra), ("b", rb)) for m in ("fwd", "fwdbwd")}})
(d / "ab.json").write_text(json.dumps(res, indent=1))
print(f"A/B gate_b={gate_b} sum graph fwd+bwd (plain) a={ta} b={tb} -> {res['chosen']}", file=sys.stderr)
for r in res["rows"]:
    print(f"  {r['op']:26s} {r['shape']:16s} fwd a/b {r['a_fwd']} / {r['b_fwd']}  fwd+bwd a/b {r['a_fwdbwd']} / {r['b_fwdbwd']}", file=sys.stderr)
print("/tmp/zoo_alt" if pick_b else ".")
PY
)
echo "kernels.py from ${ROOT:-.} with $(left)s"
exec python3 "${ROOT:-.}/bench/kernels.py" --out "$DIR" --budget-s "$(left)"
