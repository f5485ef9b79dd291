# shellcheck shell=bash disable=SC2034  # sets FLAVOUR, FLAG_GIVEN, ENGINE for its callers
# Shared by scripts/cluster-up.sh and scripts/cluster-down.sh, which source it.

# parse_args NAME HELP_LAST_LINE FLAG [ARG...]: FLAVOUR=minikube with --minikube (else kind),
# FLAG_GIVEN=1 when FLAG is among the arguments (else 0); --help prints the calling script's
# header (lines 2 to HELP_LAST_LINE) and exits, any other argument exits 2.
parse_args() {
  local name="$1" help_last_line="$2" flag="$3" arg
  shift 3
  FLAVOUR=kind
  FLAG_GIVEN=0
  for arg in "$@"; do
    case "$arg" in
      --minikube) FLAVOUR=minikube ;;
      "$flag") FLAG_GIVEN=1 ;;
      -h | --help)
        sed -n "2,${help_last_line}p" "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
      *)
        echo "$name: unknown option $arg (try --help)" >&2
        exit 2
        ;;
    esac
  done
}

# find_engine: ENGINE=docker or podman, the first on PATH, else ENGINE="".
find_engine() {
  local candidate
  ENGINE=""
  for candidate in docker podman; do
    if command -v "$candidate" >/dev/null 2>&1; then
      ENGINE="$candidate"
      return
    fi
  done
}
