#!/usr/bin/env bash
# Remakes this folder's .txt files (about 12 min on the 2-core CPU). Needs the protocol's
# corpora under /tmp/afe3 (avatar-forcing evaluate --protocol /tmp/afe3 makes them) and the
# kernel-45 run of README.md at /tmp/s7/k45 (its config.json edited to v3's sampling settings).
set -euo pipefail
cd "$(dirname "$0")/../../.."
here=benchmarks/results/backchannel-kernel-2026-12-07
tf=benchmarks/results/backchannel-2026-12-07/teacher_forced.py
{
  for g in 2 5; do python $tf /tmp/afe3/validation models/af_forcing_v2 $g; done
  for g in 2 3 5; do python $tf /tmp/afe3/validation models/af_forcing_v3 $g; done
  [ -d /tmp/s7/k45 ] && python $tf /tmp/afe3/validation /tmp/s7/k45 5
} 2>&1 | grep -v "^W0000\|Feedback manager" > $here/teacher_forced.txt
{
  python $here/nod_guidance.py /tmp/afe3/validation models/af_forcing_v3 2:2 2:5 2:7 2:10
  python $here/nod_guidance.py /tmp/afe3/validation models/af_forcing_v3 2:7 --all-pose
  python $here/nod_guidance.py /tmp/afe3/validation models/af_forcing_v2 2:7
} 2>&1 | grep -v "^W0000\|Feedback manager" > $here/nod_guidance.txt
python benchmarks/results/candidates-2026-11-30/step_cost.py models/af_forcing_v2/model.onnx \
    models/af_forcing_v3/model.onnx > $here/step_cost.txt 2>&1
