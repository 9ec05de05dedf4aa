//! `tollgate healthcheck`: asks a running server's `/health`, for container health checks.
//!
//! The runtime image has no curl or wget, so the binary asks itself: one HTTP/1.1 request to
//! HOST:PORT (loopback when HOST is a wildcard address), and exit 0 on a 200 within
//! [`TIMEOUT`], else 1. A degraded server still answers 200: it serves, so the container is
//! healthy; `/health`'s body says what is degraded.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    process::ExitCode,
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::config::Settings;

/// How long the whole check may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The command: checks the server these settings describe.
pub async fn run(settings: &Settings) -> ExitCode {
    let host = match settings.host {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    match probe(SocketAddr::new(host, settings.port)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tollgate healthcheck: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `GET /health` on `addr`; `Ok` when it answers 200 within [`TIMEOUT`].
pub async fn probe(addr: SocketAddr) -> Result<(), String> {
    tokio::time::timeout(TIMEOUT, ask(addr))
        .await
        .map_err(|_| format!("{addr} did not answer within {} s", TIMEOUT.as_secs()))?
}

async fn ask(addr: SocketAddr) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|error| format!("cannot connect to {addr}: {error}"))?;
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|error| format!("cannot send to {addr}: {error}"))?;
    // The status line is all that is needed; it comes first.
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < "HTTP/1.1 200".len() {
        match stream.read(&mut head[read..]).await {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(error) => return Err(format!("cannot read from {addr}: {error}")),
        }
    }
    let status_line = String::from_utf8_lossy(&head[..read]);
    let status = status_line.split_whitespace().nth(1).unwrap_or("none");
    if status_line.starts_with("HTTP/1.") && status == "200" {
        Ok(())
    } else {
        Err(format!("/health answered {status}"))
    }
}
