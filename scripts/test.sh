#!/usr/bin/env bash
# THE test command: installs the real test servers (idempotent, a no-op when present), then
# runs every test of the workspace. Extra arguments go to `cargo test`, e.g.
#   bash scripts/test.sh -p sluice-testkit -- --nocapture
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
exec cargo test --workspace --all-targets "$@"
