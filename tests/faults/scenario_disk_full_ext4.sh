#!/bin/sh
# scenario_disk_full_ext4.sh — scenario_disk_full.sh with DF_FS=ext4: the store writes through its map on a loop-mounted ext4 image that another process's file fills; the failed reservation must give its blocks back and the map grow by what the disk has less the margin.
export DF_FS=ext4
. "$(dirname "$0")/scenario_disk_full.sh"
