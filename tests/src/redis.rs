//! A private Redis server for tests: `redis-server` on a free loopback port, no persistence.
//!
//! The binary is `$TOLLGATE_TEST_REDIS_SERVER`, else `redis-server` on the PATH (`.ci/run`
//! installs Debian's package). Readiness is read from the server's own log line, not guessed.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

/// A running `redis-server`, killed when dropped.
pub struct RedisServer {
    pub port: u16,
    binary: String,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one, or returns `None` (with a notice) when no `redis-server` is installed and
    /// this is not CI. On CI a missing Redis fails the test.
    ///
    /// # Panics
    /// When Redis is missing on CI, or cannot start.
    pub fn start() -> Option<Self> {
        let binary = std::env::var("TOLLGATE_TEST_REDIS_SERVER")
            .unwrap_or_else(|_| "redis-server".to_owned());
        if Command::new(&binary).arg("--version").output().is_err() {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "redis-server not found (set TOLLGATE_TEST_REDIS_SERVER); .ci/run installs it"
                );
            }
            eprintln!("skipping: redis-server is not installed (apt-get install redis-server)");
            return None;
        }
        let port = free_port();
        let mut server = Self {
            port,
            binary,
            child: None,
        };
        server.restart();
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (its data is gone: there is no persistence).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and waits until it accepts connections.
    ///
    /// # Panics
    /// When it cannot start.
    pub fn restart(&mut self) {
        self.kill();
        let mut child = match Command::new(&self.binary)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "notice",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(error) => panic!("cannot start redis-server: {error}"),
        };
        let Some(stdout) = child.stdout.take() else {
            panic!("redis-server has no stdout")
        };
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("Ready to accept connections") => break,
                Some(Ok(_)) => {}
                _ => panic!("redis-server exited before it was ready"),
            }
        }
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.child = Some(child);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(addr) => addr.port(),
        Err(error) => panic!("no free loopback port: {error}"),
    }
}
