//! Private Redis servers for tests: `redis-server` on free loopback ports, no persistence; one
//! plain, one over TLS with certificates made for the test, or a three-master Redis Cluster.
//!
//! The binary is `$TOLLGATE_TEST_REDIS_SERVER`, else `redis-server` on the PATH (`.ci/run`
//! installs Debian's package, which brings `redis-cli` beside it). Readiness is read from the
//! server's own log line, not guessed; a cluster is ready when every node says `cluster_state:ok`.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

/// A running `redis-server`, killed when dropped.
pub struct RedisServer {
    pub port: u16,
    binary: String,
    /// Arguments besides the port and the no-persistence defaults.
    extra: Vec<String>,
    tls: bool,
    child: Option<Child>,
}

fn redis_binary() -> Option<String> {
    let binary =
        std::env::var("TOLLGATE_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
    if Command::new(&binary).arg("--version").output().is_ok() {
        return Some(binary);
    }
    if std::env::var_os("CI").is_some() {
        panic!("redis-server not found (set TOLLGATE_TEST_REDIS_SERVER); .ci/run installs it");
    }
    eprintln!("skipping: redis-server is not installed (apt-get install redis-server)");
    None
}

impl RedisServer {
    /// Starts one, or returns `None` (with a notice) when no `redis-server` is installed and
    /// this is not CI. On CI a missing Redis fails the test.
    ///
    /// # Panics
    /// When Redis is missing on CI, or cannot start.
    pub fn start() -> Option<Self> {
        Self::start_with(Vec::new(), false)
    }

    /// Starts one serving TLS only (`--port 0`), with `tls`'s server certificate, and these
    /// ACL `users` (`"name on >password ~* &* +@all"`; `"default off"` refuses the default user).
    ///
    /// # Panics
    /// As [`Self::start`].
    pub fn start_tls(tls: &TestCertificates, users: &[&str]) -> Option<Self> {
        let mut extra = vec![
            "--tls-cert-file".to_owned(),
            path_arg(&tls.server_cert),
            "--tls-key-file".to_owned(),
            path_arg(&tls.server_key),
            "--tls-ca-cert-file".to_owned(),
            path_arg(&tls.ca_cert),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
        ];
        // redis-server reads `--user` and the words after it as one config line.
        for user in users {
            extra.push("--user".to_owned());
            extra.extend(user.split(' ').map(str::to_owned));
        }
        Self::start_with(extra, true)
    }

    fn start_with(extra: Vec<String>, tls: bool) -> Option<Self> {
        let binary = redis_binary()?;
        let mut server = Self {
            port: free_port(),
            binary,
            extra,
            tls,
            child: None,
        };
        server.restart();
        Some(server)
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// The URL with an ACL user and password.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        self.url()
            .replacen("://", &format!("://{user}:{password}@"), 1)
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
        let port = self.port.to_string();
        let ports: &[&str] = if self.tls {
            &["--port", "0", "--tls-port", &port]
        } else {
            &["--port", &port]
        };
        let mut child = match Command::new(&self.binary)
            .args(ports)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--loglevel", "notice"])
            .args(&self.extra)
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

    /// Runs `redis-cli` against this (plain) server and returns its output.
    ///
    /// # Panics
    /// When `redis-cli` cannot run.
    pub fn cli(&self, args: &[&str]) -> String {
        cli_on(self.port, args)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `redis-cli` against the plain server on `port` and returns its output.
///
/// # Panics
/// When `redis-cli` cannot run.
pub fn cli_on(port: u16, args: &[&str]) -> String {
    let binary =
        std::env::var("TOLLGATE_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
    redis_cli(&binary, &[&["-p", &port.to_string()], args].concat())
}

/// `redis-cli`, found beside `redis-server` (else on the PATH).
fn cli_binary(server_binary: &str) -> PathBuf {
    let beside = Path::new(server_binary).with_file_name("redis-cli");
    if beside.is_file() {
        beside
    } else {
        PathBuf::from("redis-cli")
    }
}

fn redis_cli(server_binary: &str, args: &[&str]) -> String {
    let cli = cli_binary(server_binary);
    match Command::new(&cli).args(args).output() {
        Ok(output) => String::from_utf8_lossy(&output.stdout).into_owned(),
        Err(error) => panic!("cannot run {}: {error}", cli.display()),
    }
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// A directory of its own under the system's temporary directory, removed when dropped.
pub struct ScratchDir(pub PathBuf);

impl ScratchDir {
    /// # Panics
    /// When the directory cannot be made.
    pub fn new(purpose: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "tollgate-{purpose}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        if let Err(error) = std::fs::create_dir_all(&path) {
            panic!("cannot make {}: {error}", path.display());
        }
        Self(path)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CA made for one test, and a server certificate it signed for 127.0.0.1 and localhost
/// (made with the `openssl` command line).
pub struct TestCertificates {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    _dir: ScratchDir,
}

impl TestCertificates {
    /// `None` (with a notice) when `openssl` is missing and this is not CI.
    ///
    /// # Panics
    /// When `openssl` fails, or is missing on CI.
    pub fn make(name: &str) -> Option<Self> {
        if Command::new("openssl").arg("version").output().is_err() {
            assert!(std::env::var_os("CI").is_none(), "openssl not found");
            eprintln!("skipping: openssl is not installed");
            return None;
        }
        let dir = ScratchDir::new("certs");
        let at = |file: &str| path_arg(&dir.0.join(file));
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"],
                &ec[..],
                &["-keyout", &at("ca.key"), "-out", &at("ca.pem")],
                &["-days", "2", "-subj", &format!("/CN={name} test CA")],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req"],
                &ec[..],
                &["-keyout", &at("server.key"), "-out", &at("server.csr")],
                &["-subj", "/CN=localhost"],
            ]
            .concat(),
        );
        let extensions = "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
                          keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n";
        if let Err(error) = std::fs::write(dir.0.join("server.ext"), extensions) {
            panic!("cannot write the certificate extensions: {error}");
        }
        openssl(&[
            "x509",
            "-req",
            "-in",
            &at("server.csr"),
            "-CA",
            &at("ca.pem"),
            "-CAkey",
            &at("ca.key"),
            "-CAcreateserial",
            "-out",
            &at("server.pem"),
            "-days",
            "2",
            "-extfile",
            &at("server.ext"),
        ]);
        Some(Self {
            ca_cert: dir.0.join("ca.pem"),
            server_cert: dir.0.join("server.pem"),
            server_key: dir.0.join("server.key"),
            _dir: dir,
        })
    }
}

fn openssl(args: &[&str]) {
    match Command::new("openssl").args(args).output() {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(error) => panic!("cannot run openssl: {error}"),
    }
}

/// A Redis Cluster of masters without replicas, formed with `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    _dir: ScratchDir,
}

impl RedisCluster {
    /// Starts `masters` nodes (at least 3) and forms the cluster; returns once every node
    /// reports `cluster_state:ok`.
    ///
    /// # Panics
    /// When a node cannot start or the cluster does not form within 30 s.
    pub fn start(masters: usize) -> Option<Self> {
        redis_binary()?;
        let dir = ScratchDir::new("cluster");
        let nodes: Vec<RedisServer> = (0..masters)
            .filter_map(|i| {
                let config = path_arg(&dir.0.join(format!("nodes-{i}.conf")));
                let extra = [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &config,
                    // The bus port defaults to port + 10000, which may not exist.
                    "--cluster-port",
                    &free_port().to_string(),
                    "--cluster-node-timeout",
                    "5000",
                ];
                RedisServer::start_with(extra.map(str::to_owned).to_vec(), false)
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let mut create = vec!["--cluster", "create"];
        create.extend(addresses.iter().map(String::as_str));
        create.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        let output = redis_cli(&nodes[0].binary, &create);
        assert!(
            output.contains("[OK]"),
            "the cluster did not form: {output}"
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while !nodes
            .iter()
            .all(|n| n.cli(&["cluster", "info"]).contains("cluster_state:ok"))
        {
            assert!(
                Instant::now() < deadline,
                "the cluster never reached state ok"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Self { nodes, _dir: dir })
    }

    /// The URL of one node: a seed for a cluster client.
    pub fn seed(&self, node: usize) -> String {
        self.nodes[node].url()
    }
}

fn free_port() -> u16 {
    match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(addr) => addr.port(),
        Err(error) => panic!("no free loopback port: {error}"),
    }
}

/// Polls `check` until it holds or `within` passes (state that propagates asynchronously, such
/// as Redis health or a cache entry reaching another instance).
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if started.elapsed() > within {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `/health` of a test server, as JSON.
///
/// # Panics
/// When the server does not answer.
pub async fn health(client: &reqwest::Client, server: &crate::TestServer) -> serde_json::Value {
    let response = client.get(server.url("/health")).send().await;
    match response {
        Ok(response) => response.json().await.unwrap_or_default(),
        Err(error) => panic!("GET /health failed: {error}"),
    }
}

/// `redis-cli MONITOR` on a plain server: every command the server runs while it watches.
pub struct Monitor {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Monitor {
    /// Starts watching `port`; returns once the server has confirmed (its `OK`), so every
    /// command after this is seen.
    ///
    /// # Panics
    /// When `redis-cli` cannot run or never confirms.
    pub fn start(port: u16) -> Self {
        let binary = std::env::var("TOLLGATE_TEST_REDIS_SERVER")
            .unwrap_or_else(|_| "redis-server".to_owned());
        let mut child = match Command::new(cli_binary(&binary))
            .args(["-p", &port.to_string(), "MONITOR"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(error) => panic!("cannot run redis-cli MONITOR: {error}"),
        };
        let Some(stdout) = child.stdout.take() else {
            panic!("redis-cli MONITOR has no stdout")
        };
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        match lines.recv_timeout(std::time::Duration::from_secs(10)) {
            Ok(first) if first.trim() == "OK" => Self { child, lines },
            other => panic!("redis-cli MONITOR did not start: {other:?}"),
        }
    }

    /// The commands seen so far (one `MONITOR` line each), waiting `settle` for late ones.
    pub fn seen(&self, settle: std::time::Duration) -> Vec<String> {
        let mut seen = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(settle) {
            seen.push(line);
        }
        seen
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
