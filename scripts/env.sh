# Source this file from bash to use the environment that scripts/setup.sh made:
#   source scripts/env.sh
# It activates the venv and sets what ROS 2 from pip wheels needs: the venv as the ament prefix
# (package share folders, message packages), discovery on this machine only, and the package's
# Fast DDS profile (shared memory for large images). A variable you have already set is kept.
_afr_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "${VENV:-$_afr_repo/.venv}/bin/activate"

case ":${AMENT_PREFIX_PATH:-}:" in
  *":$VIRTUAL_ENV:"*) ;;
  *) export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;;
esac
# Kilted reads ROS_AUTOMATIC_DISCOVERY_RANGE, Jazzy both.
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
export ROS_LOCALHOST_ONLY=${ROS_LOCALHOST_ONLY:-1}
# Kilted reads FASTDDS_..., Jazzy FASTRTPS_...
export FASTDDS_DEFAULT_PROFILES_FILE=${FASTDDS_DEFAULT_PROFILES_FILE:-$_afr_repo/config/fastdds_shm_profile.xml}
export FASTRTPS_DEFAULT_PROFILES_FILE=${FASTRTPS_DEFAULT_PROFILES_FILE:-$FASTDDS_DEFAULT_PROFILES_FILE}
unset _afr_repo
