#!/usr/bin/env bash
# bench_op_count on two small shapes, the narrow fp32 block (the sMNIST
# layer's fused kernels) and the wide bf16 block (BatchNorm inside the LRU
# op): with block_ops fused a step must call more fused ops and launch fewer
# kernels in all than with LibTorch's composition. Catches a fused path that
# falls back to the composition without saying so. And dropout's keep
# masks count (CUDA draws each with a kernel of ours; the CPU's Philox draw
# must count as one), except those drawn inside the kernels on CUDA:
# narrow_mix's, glu_residual's and the wide block front's.
#   op_count_check.sh PATH/TO/bench_op_count
set -euo pipefail
bin=$1

# total kernels and fused-op calls of one run: "TOTAL FUSED"
count() {
  local line fwd bwd fused
  line=$("$bin" "$@" | tail -n 1) || { echo "bench_op_count $* failed" >&2; return 1; }
  fwd=$(sed -n 's/.*"forward_kernels": \([0-9]*\).*/\1/p' <<<"$line")
  bwd=$(sed -n 's/.*"backward_kernels": \([0-9]*\).*/\1/p' <<<"$line")
  fused=$(sed -n 's/.*"fused_ops": \([0-9]*\).*/\1/p' <<<"$line")
  [[ -n $fwd && -n $bwd && -n $fused ]] || { echo "no JSON counts in: $line" >&2; return 1; }
  echo "$((fwd + bwd)) $fused"
}

check() {
  local name=$1 composed_counts fused_counts composed composed_fused fused fused_fused
  shift
  composed_counts=$(count "$@" --block-ops composed) || exit 1
  fused_counts=$(count "$@" --block-ops fused) || exit 1
  read -r composed composed_fused <<<"$composed_counts"
  read -r fused fused_fused <<<"$fused_counts"
  echo "$name: composed $composed kernels ($composed_fused fused-op calls), fused $fused ($fused_fused calls)"
  if ((fused >= composed || fused_fused <= composed_fused)); then
    echo "$name: the fused step does not launch fewer kernels with more fused ops" >&2
    exit 1
  fi
}

check narrow_fp32 --blocks 1 --state 16 --hidden 8 --batch 4 --length 64
check wide_bf16 --blocks 2 --state 16 --hidden 24 --batch 4 --length 64 --input 3 --precision bf16

# The fused narrow step with dropout launches one kernel more per block
# forward than without: the GELU's keep mask (the GLU's is drawn inside
# glu_residual's kernels).
with_dropout=$(count --blocks 1 --state 16 --hidden 8 --batch 4 --length 64 --block-ops fused --dropout 0.1) || exit 1
without=$(count --blocks 1 --state 16 --hidden 8 --batch 4 --length 64 --block-ops fused --dropout 0) || exit 1
echo "narrow_fp32 fused: ${without%% *} kernels without dropout, ${with_dropout%% *} with it"
if (( ${with_dropout%% *} != ${without%% *} + 1 )); then
  echo "narrow_fp32: the GELU's keep mask is not counted as one kernel, or the GLU's is counted" >&2
  exit 1
fi

# The wide bf16 block in training draws both masks inside its kernels (the
# block front's and glu_residual's): dropout adds no kernel.
wide_drop=$(count --blocks 2 --state 16 --hidden 24 --batch 4 --length 64 --input 3 --precision bf16 --block-ops fused \
  --dropout 0.1) || exit 1
wide_plain=$(count --blocks 2 --state 16 --hidden 24 --batch 4 --length 64 --input 3 --precision bf16 --block-ops fused \
  --dropout 0) || exit 1
echo "wide_bf16 fused: ${wide_plain%% *} kernels without dropout, ${wide_drop%% *} with it"
if (( ${wide_drop%% *} != ${wide_plain%% *} )); then
  echo "wide_bf16: dropout drawn in the kernels still costs kernels" >&2
  exit 1
fi

# block_ops auto on the narrow fp32 block: its mix stage is narrow_mix (one
# kernel forward, two backward, the masks drawn inside): fewer kernels than
# the fused ops, and dropout adds none.
auto_drop=$(count --blocks 1 --state 16 --hidden 8 --batch 4 --length 64 --block-ops auto --dropout 0.1) || exit 1
auto_plain=$(count --blocks 1 --state 16 --hidden 8 --batch 4 --length 64 --block-ops auto --dropout 0) || exit 1
echo "narrow_fp32 auto (narrow_mix): ${auto_plain%% *} kernels without dropout, ${auto_drop%% *} with it"
if (( ${auto_drop%% *} >= ${with_dropout%% *} || ${auto_drop%% *} != ${auto_plain%% *} )); then
  echo "narrow_fp32 auto: narrow_mix does not launch fewer kernels than the fused ops, or its masks cost kernels" >&2
  exit 1
fi
