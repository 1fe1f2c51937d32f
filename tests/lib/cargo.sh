# Sourced by tests/run.sh and by every suite that needs Rust binaries: one set of cargo settings and
# one build command for the whole test run, so no crate is compiled twice in different flavours.
# - Workspace crates compile through clippy-driver (rustc plus the clippy lints), so one pass both
#   lints and generates code; `cargo clippy` would type-check the whole dependency graph again.
# - No RUSTFLAGS: `warnings = "deny"` in [workspace.lints] fails the build on a rustc or clippy warning
#   in a workspace crate, as `cargo clippy -- -D warnings` would, while dependencies keep the
#   fingerprints `cargo run --release` gives them (the demo and the tests share one dependency build).
# - Always the whole workspace with all targets: `cargo build -p X` resolves a different feature set
#   and recompiles shared dependencies (the CI log showed minutes of that).
export RUSTC_WORKSPACE_WRAPPER="${RUSTC_WORKSPACE_WRAPPER:-$(rustc --print sysroot)/bin/clippy-driver}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# workspace_build: every binary, test and bench of the workspace in release. Once it has
# succeeded in a shell, that shell's children (the suites under tests/run.sh) skip it: nothing
# changes the sources during a run, and a second cargo call could only wait on a lock, silently.
workspace_build() {
  [[ -n "${SIGSCI_KIT_TEST_WORKSPACE_BUILT-}" ]] && return 0
  cargo build --release --workspace --all-targets --quiet --manifest-path "$(dirname "${BASH_SOURCE[0]}")/../../Cargo.toml" &&
    export SIGSCI_KIT_TEST_WORKSPACE_BUILT=1
}
