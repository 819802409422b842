#!/usr/bin/env bash
# Load the demo data set into the system deploy/local/up.sh brought up, over
# its public HTTP API: eight simulated clients (six fintech clients that
# share their data, one of them Northwind Capital with 10,000 sends; two
# that do not), four months of sends and replies with planted effects, and
# one run of the suggestion engine for each. The README's tour reads it.
#
#   deploy/local/up.sh && deploy/local/demo.sh
#
# The loader is tests/src/bin/sextant-demo.rs, built with the profile up.sh
# built the services with (SEXTANT_BUILD_PROFILE to choose another;
# SEXTANT_SKIP_BUILD=1 to use what is already built). The same seed
# (SEXTANT_DEMO_SEED, 2026) loads the same data; loading twice loads once.
# It writes .sextant/run/demo, a sourceable file: SEXTANT_DEMO_CLIENT is
# Northwind Capital's id. SEXTANT_STATE_DIR as for up.sh.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ -f $RUN_DIR/env ]] ||
  die "no $(rel "$RUN_DIR/env"): bring the system up first (deploy/local/up.sh)"
# shellcheck source=/dev/null # written by up.sh
source "$RUN_DIR/env"
[[ -n ${SEXTANT_OPERATOR_KEY:-} ]] ||
  die "no operator key: up.sh was given SEXTANT_OPERATOR_KEY; set it here too"

profile=${SEXTANT_BUILD_PROFILE:-}
[[ -n $profile ]] || profile=$(cat "$RUN_DIR/build_profile" 2>/dev/null || printf 'release')
read -r sub _ < <(profile_args "$profile")
if [[ ${SEXTANT_SKIP_BUILD:-0} != 1 ]]; then
  command -v cargo >/dev/null 2>&1 || die "required program 'cargo' not found"
  say "bringing the demo loader, sextant-demo, up to date ($profile; the build up.sh ran)"
  build_binaries "$profile" || die "the build failed"
fi
bin=$(target_dir)/${CARGO_BUILD_TARGET:+$CARGO_BUILD_TARGET/}$sub/sextant-demo
[[ -x $bin ]] || die "$bin is missing (build it, or unset SEXTANT_SKIP_BUILD)"

say "loading the demo data into $SEXTANT_COMMAND_URL (seed ${SEXTANT_DEMO_SEED:-2026})"
started=$SECONDS
"$bin" --seed "${SEXTANT_DEMO_SEED:-2026}" --ids "$RUN_DIR/demo"
say "demo data ready in $((SECONDS - started)) s; its client ids: source $(rel "$RUN_DIR/demo")"
