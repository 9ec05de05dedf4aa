//! Credentials renewed while connections live (the groundwork of REDIS_ENTRA_AUTH), against a
//! real `redis-server`: a fake credential source hands out short-lived logins, each a fresh ACL
//! user and password, as Entra ID hands out short-lived tokens. Deleting an ACL user
//! disconnects every client logged in as it, just as an expired token ends a session on Azure:
//! the live connection survives only because it re-authenticated before expiry.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use gateway_client::{
    shared::{
        RedisConnection, RedisOptions, RedisState,
        credentials::{CredentialFeed, RedisCredentials, RedisLogin},
    },
    store::StoreError,
};
use std::sync::Mutex;
use tests::redis::{RedisServer, cli_on, eventually};

/// Each login lives this long; renewal comes a quarter of it early.
const LIFETIME: Duration = Duration::from_secs(6);

struct RotatingLogins {
    port: u16,
    /// Every login handed out: user, password, expiry.
    issued: Mutex<Vec<(String, String, SystemTime)>>,
}

#[async_trait]
impl RedisCredentials for RotatingLogins {
    async fn credentials(&self) -> Result<RedisLogin, StoreError> {
        let n = self.issued.lock().unwrap().len();
        let (user, password) = (format!("app-{n}"), format!("token-{n}-s3cret"));
        let acl = format!("ACL SETUSER {user} on >{password} ~* &* +@all");
        let port = self.port;
        let created =
            tokio::task::spawn_blocking(move || cli_on(port, &acl.split(' ').collect::<Vec<_>>()))
                .await
                .unwrap();
        assert_eq!(created.trim(), "OK");
        let expires_at = SystemTime::now() + LIFETIME;
        self.issued
            .lock()
            .unwrap()
            .push((user.clone(), password.clone(), expires_at));
        Ok(RedisLogin {
            username: user,
            password: password.into(),
            expires_at,
        })
    }
}

async fn ask(state: &RedisState, words: &[&str]) -> String {
    let mut command = redis::cmd(words[0]);
    for word in &words[1..] {
        command.arg(*word);
    }
    let command = &command;
    let reply: redis::Value =
        state
            .run(|mut connection: RedisConnection| async move {
                command.query_async(&mut connection).await
            })
            .await
            .unwrap();
    match reply {
        redis::Value::Int(n) => n.to_string(),
        other => redis::from_redis_value::<String>(other).unwrap(),
    }
}

#[tokio::test]
async fn live_connections_re_authenticate_before_their_login_expires() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // The default user stays for the test's own administration (redis-cli).
    let logins = Arc::new(RotatingLogins {
        port: redis.port,
        issued: Mutex::new(Vec::new()),
    });
    let state = RedisState::connect_with(RedisOptions {
        credentials: Some(CredentialFeed::start(logins.clone())),
        ..RedisOptions::single(&redis.url())
    })
    .unwrap();
    let _probe = state.spawn_health_probe();
    let connected = eventually(Duration::from_secs(3), || async { state.is_healthy() }).await;
    assert!(connected);
    let id = ask(&state, &["CLIENT", "ID"]).await;
    assert_eq!(ask(&state, &["ACL", "WHOAMI"]).await, "app-0");

    let renewed = eventually(LIFETIME, || async {
        logins.issued.lock().unwrap().len() >= 2
    })
    .await;
    assert!(renewed, "the login was never renewed");
    let (old_user, _, old_expiry) = logins.issued.lock().unwrap()[0].clone();
    // The old login expires: its user goes, and with it any connection still using it.
    let became_new = eventually(Duration::from_secs(1), || async {
        ask(&state, &["ACL", "WHOAMI"]).await == "app-1"
    })
    .await;
    assert!(became_new, "the live connection never re-authenticated");
    assert!(
        SystemTime::now() < old_expiry,
        "re-authenticated only after the old login expired"
    );
    redis.cli(&["ACL", "DELUSER", &old_user]);
    assert_eq!(ask(&state, &["ACL", "WHOAMI"]).await, "app-1");
    assert_eq!(
        ask(&state, &["CLIENT", "ID"]).await,
        id,
        "the connection was replaced"
    );

    // A new connection (after a disconnect) logs in with the current login.
    redis.cli(&["CLIENT", "KILL", "USER", "app-1"]);
    let back = eventually(Duration::from_secs(3), || async {
        let mut connection = state.dedicated_connection().unwrap();
        redis::cmd("ACL")
            .arg("WHOAMI")
            .query_async::<String>(&mut connection)
            .await
            .is_ok_and(|user| user.starts_with("app-"))
    })
    .await;
    assert!(back, "no new connection could log in");
    // No password in the state's health reason, whatever happened.
    let passwords: Vec<String> = logins
        .issued
        .lock()
        .unwrap()
        .iter()
        .map(|l| l.1.clone())
        .collect();
    let reason = state.degraded_reason().unwrap_or_default();
    assert!(passwords.iter().all(|p| !reason.contains(p)), "{reason}");
}
