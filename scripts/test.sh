#!/usr/bin/env bash
# Run the test suite in the environment scripts/setup.sh made (real rclpy + Fast DDS, nodes
# as separate processes; discovery stays on loopback, see test/conftest.py).
#   scripts/test.sh [pytest args...]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# Discovery on loopback only, in a domain of this run's own, before any rclpy process starts.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_LOCALHOST_ONLY=1
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$((RANDOM % 100 + 1))}
. scripts/env.sh
exec python -m pytest -q -ra "${@:-test}"
