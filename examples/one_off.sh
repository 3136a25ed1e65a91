#!/usr/bin/env bash
# One-off repair from the shell: look, preview, repair, check, and keep the way back.
#   examples/one_off.sh BASE FINETUNED
set -uo pipefail
base=${1:?usage: one_off.sh BASE FINETUNED}
ft=${2:?usage: one_off.sh BASE FINETUNED}
ftfix check "$base" "$ft"                 # exit 1 when errors are found: keep going
ftfix repair --diff "$base" "$ft"         # what would change
ftfix repair "$base" "$ft" || exit $?     # apply the safe fixes (backup kept)
ftfix check "$base" "$ft" || exit $?      # exit 0: nothing left that breaks inference
echo "undo with: ftfix undo $ft"
