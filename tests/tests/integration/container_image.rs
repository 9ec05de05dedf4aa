//! The container image, as far as it can be checked here: no base image can be pulled on these
//! machines, so the image is never built in the tests. What is checked: the Dockerfile has what
//! the deployment docs promise (a multi-stage build, a non-root runtime with CA certificates,
//! HOST=0.0.0.0, PORT, and a HEALTHCHECK that runs `tollgate healthcheck`), `.dockerignore` keeps
//! build output and secrets out of the context, and the health check itself answers as the
//! HEALTHCHECK needs against a running server (the binary is run for real in
//! mcp-server/tests/healthcheck_cli.rs).

use std::path::PathBuf;

use tests::TestServer;

fn repo_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Dockerfile's instructions, `(KEYWORD, arguments)`, with continuation lines joined.
fn instructions(dockerfile: &str) -> Vec<(String, String)> {
    let joined = dockerfile.replace("\\\n", " ");
    joined
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let (keyword, rest) = line.split_once(char::is_whitespace)?;
            Some((keyword.to_uppercase(), rest.trim().to_owned()))
        })
        .collect()
}

#[test]
fn the_dockerfile_builds_in_stages_and_runs_unprivileged_with_a_healthcheck() {
    let all = instructions(&repo_file("Dockerfile"));
    let stages: Vec<usize> = all
        .iter()
        .enumerate()
        .filter(|(_, (keyword, _))| keyword == "FROM")
        .map(|(index, _)| index)
        .collect();
    assert!(stages.len() >= 2, "a builder and a runtime stage");
    assert!(
        all[stages[0]].1.contains("rust"),
        "the builder is a Rust image"
    );
    let runtime = &all[*stages.last().unwrap()..];
    let args = |keyword: &str| -> Vec<&str> {
        runtime
            .iter()
            .filter(|(k, _)| k == keyword)
            .map(|(_, a)| a.as_str())
            .collect()
    };
    assert!(
        args("COPY")
            .iter()
            .any(|a| a.contains("--from=") && a.contains("tollgate")),
        "the runtime copies the binary from the builder"
    );
    assert!(
        args("RUN").iter().any(|a| a.contains("ca-certificates"))
            || args("COPY").iter().any(|a| a.contains("ca-certificates")),
        "CA certificates for TLS to Azure"
    );
    let user = args("USER");
    assert!(
        user.last()
            .is_some_and(|u| !u.starts_with("root") && !u.starts_with('0')),
        "a non-root user: {user:?}"
    );
    let env = args("ENV").join(" ");
    assert!(env.contains("HOST=0.0.0.0"), "{env}");
    assert!(env.contains("PORT="), "{env}");
    assert!(!args("EXPOSE").is_empty());
    let healthcheck = args("HEALTHCHECK");
    assert!(
        healthcheck
            .iter()
            .any(|h| h.contains("tollgate") && h.contains("healthcheck")),
        "{healthcheck:?}"
    );
    let entry = args("ENTRYPOINT").join(" ") + &args("CMD").join(" ");
    assert!(entry.contains("tollgate"), "{entry}");
}

#[test]
fn the_docker_context_leaves_out_build_output_and_secrets() {
    let ignored = repo_file(".dockerignore");
    let lines: Vec<&str> = ignored.lines().map(str::trim).collect();
    for entry in ["target", ".git", ".env"] {
        assert!(
            lines
                .iter()
                .any(|l| l.trim_start_matches('/').trim_end_matches('/') == entry
                    || l.trim_start_matches("**/").trim_end_matches('/') == entry),
            "{entry} is not in .dockerignore"
        );
    }
}

#[tokio::test]
async fn the_healthcheck_passes_on_a_serving_server_and_fails_on_none() {
    let server = TestServer::start(&[]).await;
    assert_eq!(mcp_server::healthcheck::probe(server.addr).await, Ok(()));
    let addr = server.addr;
    server.stop().await;
    let error = mcp_server::healthcheck::probe(addr).await.unwrap_err();
    assert!(error.contains("cannot connect"), "{error}");
}
