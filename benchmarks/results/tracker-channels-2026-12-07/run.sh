#!/usr/bin/env bash
# Remakes this folder's .txt files (about 20 min on the 2-core CPU; run nothing beside it:
# two torch processes with 2 threads each on 2 cores take 3x as long). Needs the protocol's
# corpora under /tmp/afe3, the perceived copies of README.md's first two commands, and the
# candidates its train commands make at /tmp/s7/cand{A,B,C,D}.
set -euo pipefail
cd "$(dirname "$0")/../../.."
here=benchmarks/results/tracker-channels-2026-12-07
quiet() { grep -v "^W0000\|Feedback manager\|^INFO: Created\|absl::InitializeLog"; }
python $here/perceived_inputs.py /tmp/afe3/validation_perceived models/af_forcing_v3 perceived true \
    true:pose true:mouth true:eyes+brows+cheeks group channel --figures $here/tracker_stats_train30_channels.json \
    2>&1 | quiet > $here/perceived_inputs.txt
python $here/crosstalk.py $here/tracker_stats_train30.json /tmp/afe3/validation_perceived models/af_forcing_v3 /tmp/afe3/train_perceived30 \
    2>&1 | quiet > $here/crosstalk.txt
python $here/candidates.py /tmp/afe3/validation_perceived,/tmp/afe3/validation 3 models/af_forcing_v3 \
    /tmp/s7/candA /tmp/s7/candB /tmp/s7/candC /tmp/s7/candD 2>&1 | quiet > $here/candidates.txt
