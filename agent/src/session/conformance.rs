//! The behaviour every [`SessionStore`] must show; run against each implementation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::store::{HistoryLimits, SessionStore, StoredSummary};

/// Every check's sessions live this long; times are `t0()` plus offsets against it.
const TTL: u64 = 60_000;
const ROOMY: HistoryLimits = HistoryLimits {
    max_turns: 1_000,
    max_bytes: 1 << 20,
};

/// Near the real clock: a shared store gives keys real expiry times as well.
fn t0() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs every check against `store`. Ids and owners are prefixed so a shared store can be
/// reused; the live count is checked by difference, then at a time when everything expired.
pub async fn run_all(store: &dyn SessionStore, prefix: &str) {
    created_sessions_belong_to_their_owner(store, prefix).await;
    turns_are_numbered_in_completion_order(store, prefix).await;
    concurrent_appends_lose_nothing(store, prefix).await;
    history_is_capped_by_turns_and_bytes(store, prefix).await;
    use_refreshes_the_lifetime_and_expiry_forgets(store, prefix).await;
    deletion_forgets_and_only_the_owner_may_delete(store, prefix).await;
    listings_are_per_owner_and_paginated(store, prefix).await;
    summaries_only_move_forward(store, prefix).await;
    live_sessions_are_counted(store, prefix).await;
}

pub async fn summaries_only_move_forward(store: &dyn SessionStore, prefix: &str) {
    let (id, now) = (format!("{prefix}summary"), t0());
    store.create(&id, "alice", now, TTL).await.unwrap();
    let summary = |through_seq, text: &str| StoredSummary {
        through_seq,
        text: text.to_owned(),
    };
    assert_eq!(
        store
            .load(&id, "alice", now)
            .await
            .unwrap()
            .unwrap()
            .summary,
        None
    );
    assert!(
        store
            .set_summary(&id, "alice", &summary(3, "up to three"), now + 1)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_summary(&id, "alice", &summary(2, "older"), now + 2)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_summary(&id, "bob", &summary(9, "not bob's"), now + 3)
            .await
            .unwrap()
    );
    let kept = store.load(&id, "alice", now + 4).await.unwrap().unwrap();
    assert_eq!(kept.summary, Some(summary(3, "up to three")));
    assert_eq!(
        kept.expires_ms,
        now + TTL,
        "a summary does not extend the session"
    );
    assert!(
        store
            .set_summary(&id, "alice", &summary(5, "up to five"), now + 5)
            .await
            .unwrap()
    );
    let kept = store.load(&id, "alice", now + 6).await.unwrap().unwrap();
    assert_eq!(kept.summary, Some(summary(5, "up to five")));
    let late = store
        .set_summary(&id, "alice", &summary(7, "late"), now + TTL)
        .await;
    assert!(!late.unwrap(), "an expired session takes no summary");
}

pub async fn created_sessions_belong_to_their_owner(store: &dyn SessionStore, prefix: &str) {
    let (id, now) = (format!("{prefix}owned"), t0());
    assert!(store.create(&id, "alice", now, TTL).await.unwrap());
    assert!(
        !store.create(&id, "bob", now, TTL).await.unwrap(),
        "ids are unique"
    );
    let session = store.load(&id, "alice", now + 1).await.unwrap().unwrap();
    assert!(session.turns.is_empty());
    assert_eq!((session.created_ms, session.expires_ms), (now, now + TTL));
    assert_eq!(store.load(&id, "bob", now + 1).await.unwrap(), None);
    let appended = store.append(&id, "bob", "x", now + 2, TTL, ROOMY).await;
    assert_eq!(appended.unwrap(), None, "another owner cannot append");
    assert_eq!(
        store
            .load(&format!("{prefix}none"), "alice", now)
            .await
            .unwrap(),
        None
    );
}

pub async fn turns_are_numbered_in_completion_order(store: &dyn SessionStore, prefix: &str) {
    let (id, now) = (format!("{prefix}ordered"), t0());
    store.create(&id, "alice", now, TTL).await.unwrap();
    for (offset, payload) in [(1, "first"), (2, "second"), (3, "third")] {
        let seq = store
            .append(&id, "alice", payload, now + offset, TTL, ROOMY)
            .await;
        assert_eq!(seq.unwrap(), Some(offset));
    }
    let session = store.load(&id, "alice", now + 4).await.unwrap().unwrap();
    let payloads: Vec<(u64, &str)> = session
        .turns
        .iter()
        .map(|turn| (turn.seq, turn.payload.as_str()))
        .collect();
    assert_eq!(payloads, [(1, "first"), (2, "second"), (3, "third")]);
    assert_eq!(session.updated_ms, now + 3);
}

pub async fn concurrent_appends_lose_nothing(store: &dyn SessionStore, prefix: &str) {
    let (id, now) = (format!("{prefix}concurrent"), t0());
    store.create(&id, "alice", now, TTL).await.unwrap();
    let payloads: Vec<String> = (0..24).map(|n| format!("turn {n}")).collect();
    let appends = payloads
        .iter()
        .map(|payload| store.append(&id, "alice", payload, now + 1, TTL, ROOMY));
    let mut seqs: Vec<u64> = futures::future::join_all(appends)
        .await
        .into_iter()
        .map(|seq| seq.unwrap().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=24).collect::<Vec<u64>>(),
        "each turn its own number"
    );
    let session = store.load(&id, "alice", now + 2).await.unwrap().unwrap();
    let mut kept: Vec<&str> = session.turns.iter().map(|t| t.payload.as_str()).collect();
    kept.sort_unstable();
    let mut expected: Vec<&str> = payloads.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(kept, expected);
}

pub async fn history_is_capped_by_turns_and_bytes(store: &dyn SessionStore, prefix: &str) {
    let now = t0();
    let by_turns = format!("{prefix}cap-turns");
    store.create(&by_turns, "alice", now, TTL).await.unwrap();
    let three = HistoryLimits {
        max_turns: 3,
        max_bytes: 1 << 20,
    };
    for n in 1..=5 {
        let payload = format!("turn {n}");
        store
            .append(&by_turns, "alice", &payload, now + n, TTL, three)
            .await
            .unwrap();
    }
    let session = store
        .load(&by_turns, "alice", now + 6)
        .await
        .unwrap()
        .unwrap();
    let seqs: Vec<u64> = session.turns.iter().map(|t| t.seq).collect();
    assert_eq!((seqs, session.dropped_turns), (vec![3, 4, 5], 2));

    let by_bytes = format!("{prefix}cap-bytes");
    store.create(&by_bytes, "alice", now, TTL).await.unwrap();
    let small = HistoryLimits {
        max_turns: 100,
        max_bytes: 250,
    };
    for n in 1..=4 {
        let payload = "x".repeat(100);
        store
            .append(&by_bytes, "alice", &payload, now + n, TTL, small)
            .await
            .unwrap();
    }
    let session = store
        .load(&by_bytes, "alice", now + 5)
        .await
        .unwrap()
        .unwrap();
    let seqs: Vec<u64> = session.turns.iter().map(|t| t.seq).collect();
    assert_eq!(seqs, [3, 4]);
    // A turn over the byte cap on its own is still kept: the newest turn always is.
    let huge = "y".repeat(400);
    store
        .append(&by_bytes, "alice", &huge, now + 6, TTL, small)
        .await
        .unwrap();
    let session = store
        .load(&by_bytes, "alice", now + 7)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.turns.len(), 1);
    assert_eq!(session.turns[0].payload, huge);
}

pub async fn use_refreshes_the_lifetime_and_expiry_forgets(store: &dyn SessionStore, prefix: &str) {
    let (id, now) = (format!("{prefix}ttl"), t0());
    store.create(&id, "alice", now, TTL).await.unwrap();
    assert!(
        store
            .load(&id, "alice", now + TTL - 1)
            .await
            .unwrap()
            .is_some()
    );
    // A turn at half-life moves the expiry a whole TTL on.
    let half = now + TTL / 2;
    store
        .append(&id, "alice", "t", half, TTL, ROOMY)
        .await
        .unwrap();
    let session = store
        .load(&id, "alice", now + TTL + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.expires_ms, half + TTL);
    assert_eq!(store.load(&id, "alice", half + TTL).await.unwrap(), None);
    let late = store
        .append(&id, "alice", "t", half + TTL + 1, TTL, ROOMY)
        .await;
    assert_eq!(
        late.unwrap(),
        None,
        "an expired session takes no more turns"
    );
    let page = store
        .list("alice", half + TTL + 1, None, 100)
        .await
        .unwrap();
    assert!(page.sessions.iter().all(|listing| listing.id != id));
}

pub async fn deletion_forgets_and_only_the_owner_may_delete(
    store: &dyn SessionStore,
    prefix: &str,
) {
    let (id, now) = (format!("{prefix}deleted"), t0());
    store.create(&id, "alice", now, TTL).await.unwrap();
    store
        .append(&id, "alice", "t", now + 1, TTL, ROOMY)
        .await
        .unwrap();
    assert!(!store.delete(&id, "bob", now + 2).await.unwrap());
    assert!(store.load(&id, "alice", now + 2).await.unwrap().is_some());
    assert!(store.delete(&id, "alice", now + 3).await.unwrap());
    assert_eq!(store.load(&id, "alice", now + 4).await.unwrap(), None);
    assert!(!store.delete(&id, "alice", now + 5).await.unwrap());
    let appended = store.append(&id, "alice", "t", now + 6, TTL, ROOMY).await;
    assert_eq!(
        appended.unwrap(),
        None,
        "a deleted session is not brought back"
    );
    let page = store.list("alice", now + 7, None, 100).await.unwrap();
    assert!(page.sessions.iter().all(|listing| listing.id != id));
}

pub async fn listings_are_per_owner_and_paginated(store: &dyn SessionStore, prefix: &str) {
    let now = t0();
    let (carol, dave) = (format!("{prefix}carol"), format!("{prefix}dave"));
    let mut ids: Vec<String> = (0..5).map(|n| format!("{prefix}list-{n}")).collect();
    for id in &ids {
        store.create(id, &carol, now, TTL).await.unwrap();
    }
    store
        .create(&format!("{prefix}list-dave"), &dave, now, TTL)
        .await
        .unwrap();
    ids.sort();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let page = store
            .list(&carol, now + 1, cursor.as_deref(), 2)
            .await
            .unwrap();
        assert!(page.sessions.len() <= 2);
        assert!(page.sessions.iter().all(|l| l.expires_ms == now + TTL));
        seen.extend(page.sessions.into_iter().map(|listing| listing.id));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(
        seen, ids,
        "every session once, in id order, and no one else's"
    );
    assert!(
        store
            .list(&format!("{prefix}nobody"), now, None, 10)
            .await
            .unwrap()
            .sessions
            .is_empty()
    );
}

pub async fn live_sessions_are_counted(store: &dyn SessionStore, prefix: &str) {
    let now = t0();
    let before = store.live_count(now + 1).await.unwrap();
    for n in 0..2 {
        store
            .create(&format!("{prefix}live-{n}"), "erin", now, TTL)
            .await
            .unwrap();
    }
    assert_eq!(store.live_count(now + 1).await.unwrap(), before + 2);
    store
        .delete(&format!("{prefix}live-0"), "erin", now + 2)
        .await
        .unwrap();
    assert_eq!(store.live_count(now + 2).await.unwrap(), before + 1);
    // Long after: every session of every check has expired.
    assert_eq!(store.live_count(now + 10 * TTL).await.unwrap(), 0);
}
