#!/bin/sh
# scenario_disk_full_copy.sh — scenario_disk_full.sh with DF_STORE_MODE=copy: the disk fills while the store runs in LMDB's copy mode (its map cannot be reserved on disk).
export DF_STORE_MODE=copy
. "$(dirname "$0")/scenario_disk_full.sh"
