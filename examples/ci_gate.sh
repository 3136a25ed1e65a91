#!/usr/bin/env bash
# Fail a pipeline when a fine-tuned checkpoint would misbehave at inference.
#   examples/ci_gate.sh BASE FINETUNED
# Exit 0: no error-severity problem. Exit 1: errors found (see the report). Exit 2: bad input.
set -euo pipefail
base=${1:?usage: ci_gate.sh BASE FINETUNED}
finetuned=${2:?usage: ci_gate.sh BASE FINETUNED}
ftfix check "$base" "$finetuned" --format text
