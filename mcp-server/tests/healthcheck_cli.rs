//! `tollgate healthcheck` as a container's HEALTHCHECK runs it: the real binary against the real
//! binary serving, then against nothing. Like cache_eval_cli.rs, it uses std and serde_json only
//! (only this package gets `CARGO_BIN_EXE_tollgate`). The server's port is read from its own
//! "tollgate is serving" log line, not guessed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

use serde_json::Value;

/// The real server on a free loopback port, killed when dropped.
struct Serving {
    child: Child,
    port: u16,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve() -> Serving {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .env_clear()
        .envs([("HOST", "127.0.0.1"), ("PORT", "0"), ("LOG_FORMAT", "json")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let port = stdout
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
        .find(|event| event["message"] == "tollgate is serving")
        .and_then(|event| event["addr"].as_str()?.rsplit(':').next()?.parse().ok())
        .expect("the server logs its address");
    Serving { child, port }
}

fn healthcheck(port: u16) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .env_clear()
        // As in the image: HOST is the wildcard address, which the check turns into loopback.
        .envs([("HOST", "0.0.0.0"), ("PORT", &port.to_string())])
        .arg("healthcheck")
        .output()
        .unwrap()
}

#[test]
fn the_healthcheck_passes_while_the_server_serves_and_fails_once_it_is_gone() {
    let server = serve();
    let port = server.port;
    let healthy = healthcheck(port);
    assert!(healthy.status.success(), "{healthy:?}");
    drop(server);
    let gone = healthcheck(port);
    assert_eq!(gone.status.code(), Some(1));
    let said = String::from_utf8_lossy(&gone.stderr);
    assert!(said.contains("cannot connect"), "{said}");
}
