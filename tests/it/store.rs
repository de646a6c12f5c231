//! Store tests: every `check_*` body runs once on SQLite and once on PostgreSQL, so the two
//! backends cannot drift apart.

use std::sync::Arc;

use roundtable::store::{RoomRecord, Store, StoreError, open};
use signaling::policy::RoomPolicy;
use signaling::wire::ChatMessage;
use tempfile::TempDir;

use crate::pg::fresh_database;

pub(crate) fn room(id: &str, title: &str, capacity: u32, created_at: i64) -> RoomRecord {
    RoomRecord {
        id: id.to_string(),
        title: title.to_string(),
        created_at,
        policy: RoomPolicy::new(capacity),
    }
}

fn chat(seq: i64, text: &str) -> ChatMessage {
    ChatMessage {
        seq,
        from: format!("p{}", seq % 3),
        name: format!("Person {}", seq % 3),
        text: text.to_string(),
        ts: 1_700_000_000_000 + seq,
    }
}

fn sqlite_url(dir: &TempDir) -> String {
    format!("sqlite:{}", dir.path().join("roundtable.db").display())
}

/// Generate `<name>_sqlite` and `<name>_postgres` tests that run `check` on a fresh store.
#[macro_export]
macro_rules! both_backends {
    ($check:ident => $sqlite:ident, $postgres:ident) => {
        #[tokio::test]
        async fn $sqlite() {
            let dir = tempfile::TempDir::new().unwrap();
            let url = format!("sqlite:{}", dir.path().join("roundtable.db").display());
            let store = roundtable::store::open(&url).await.unwrap();
            $check(store).await;
        }

        #[tokio::test]
        async fn $postgres() {
            let pg = $crate::pg::fresh_database().await.unwrap();
            let store = roundtable::store::open(&pg.url).await.unwrap();
            $check(store).await;
            pg.drop().await.unwrap();
        }
    };
}

both_backends!(check_rooms => rooms_sqlite, rooms_postgres);
both_backends!(check_ping => ping_sqlite, ping_postgres);
both_backends!(check_chat_recent => chat_recent_sqlite, chat_recent_postgres);
both_backends!(check_chat_conflict => chat_conflict_sqlite, chat_conflict_postgres);
both_backends!(check_chat_batch => chat_batch_sqlite, chat_batch_postgres);
both_backends!(
    check_chat_rooms_separate => chat_rooms_separate_sqlite, chat_rooms_separate_postgres
);
both_backends!(check_settings => settings_sqlite, settings_postgres);
both_backends!(check_room_rules => room_rules_sqlite, room_rules_postgres);
both_backends!(check_agenda => agenda_sqlite, agenda_postgres);

/// The readiness probe's query answers on a fresh store.
async fn check_ping(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}

async fn check_rooms(store: Arc<dyn Store>) {
    assert_eq!(store.get_room("nope").await.unwrap(), None);
    assert!(store.list_rooms().await.unwrap().is_empty());

    let old = room("old", "Old room", 4, 1_000);
    // u32::MAX would overflow a 32-bit signed column; it must survive the round trip.
    let big = room("big", "Big room", u32::MAX, 2_000);
    // Same created_at as `big`: the tie is broken by id, in byte order.
    let tie = room("Tie", "Tie room", 1, 2_000);
    let new = room("new", "New room", 12, 3_000);
    for r in [&old, &big, &tie, &new] {
        store.create_room(r).await.unwrap();
    }

    assert_eq!(store.get_room("old").await.unwrap(), Some(old.clone()));
    assert_eq!(store.get_room("big").await.unwrap(), Some(big.clone()));

    let listed = store.list_rooms().await.unwrap();
    assert_eq!(
        listed,
        vec![new.clone(), tie.clone(), big.clone(), old.clone()]
    );

    let err = store
        .create_room(&room("old", "Impostor", 2, 9_000))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "got {err:?}");
    // The conflicting insert must not have touched the original.
    assert_eq!(store.get_room("old").await.unwrap(), Some(old));
    assert_eq!(store.list_rooms().await.unwrap().len(), 4);
}

/// A room's rules round-trip, and `update_room` replaces them and the title, nothing else.
async fn check_room_rules(store: Arc<dyn Store>) {
    use signaling::policy::WhenFull;
    use signaling::roles::Role;

    let mut strict = room("strict", "Strict", 30, 1);
    strict.policy.caps.set(Role::Advocate, Some(5));
    strict.policy.caps.set(Role::Participant, Some(u32::MAX));
    strict.policy.when_full = WhenFull::Wait;
    strict.policy.auto_admit = true;
    strict.policy.open_link = false;
    let plain = room("plain", "Plain", 8, 2);
    store.create_room(&strict).await.unwrap();
    store.create_room(&plain).await.unwrap();
    assert_eq!(
        store.get_room("strict").await.unwrap(),
        Some(strict.clone())
    );
    assert_eq!(
        store.list_rooms().await.unwrap(),
        vec![plain.clone(), strict.clone()]
    );

    let mut changed = strict.clone();
    changed.title = "Loose".into();
    changed.policy = RoomPolicy::new(12);
    changed.policy.caps.set(Role::Observer, Some(0));
    // created_at is not the update's to change.
    changed.created_at = 99;
    store.update_room(&changed).await.unwrap();
    changed.created_at = strict.created_at;
    assert_eq!(store.get_room("strict").await.unwrap(), Some(changed));
    assert_eq!(store.get_room("plain").await.unwrap(), Some(plain));

    let err = store
        .update_room(&room("ghost", "Boo", 1, 1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Db(sqlx::Error::RowNotFound)),
        "got {err:?}"
    );
    assert_eq!(store.get_room("ghost").await.unwrap(), None);
}

async fn check_chat_recent(store: Arc<dyn Store>) {
    store.create_room(&room("r", "Chatty", 8, 1)).await.unwrap();
    assert!(store.recent_chat("r", 200).await.unwrap().is_empty());

    for seq in 1..=250 {
        store
            .append_chat("r", &chat(seq, &format!("message {seq}")))
            .await
            .unwrap();
    }

    let recent = store.recent_chat("r", 200).await.unwrap();
    assert_eq!(recent.len(), 200);
    let seqs: Vec<i64> = recent.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (51..=250).collect::<Vec<_>>());
    // Every field round-trips, not just seq.
    assert_eq!(recent[0], chat(51, "message 51"));
    assert_eq!(recent[199], chat(250, "message 250"));

    let all = store.recent_chat("r", 1_000).await.unwrap();
    assert_eq!(all.len(), 250);
    assert_eq!(all[0], chat(1, "message 1"));

    let last = store.recent_chat("r", 1).await.unwrap();
    assert_eq!(last, vec![chat(250, "message 250")]);

    assert!(store.recent_chat("r", 0).await.unwrap().is_empty());
    assert!(store.recent_chat("other", 10).await.unwrap().is_empty());
}

async fn check_chat_conflict(store: Arc<dyn Store>) {
    store.create_room(&room("r", "Chatty", 8, 1)).await.unwrap();
    store.append_chat("r", &chat(7, "first")).await.unwrap();

    let err = store
        .append_chat("r", &chat(7, "second"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "got {err:?}");
    assert_eq!(
        store.recent_chat("r", 10).await.unwrap(),
        vec![chat(7, "first")]
    );

    // Chat for a room that does not exist is refused by the foreign key, not a conflict.
    let err = store
        .append_chat("ghost", &chat(1, "boo"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Db(_)), "got {err:?}");
}

/// A batch is one transaction: all of it is committed, or none of it.
async fn check_chat_batch(store: Arc<dyn Store>) {
    store.create_room(&room("r", "Chatty", 8, 1)).await.unwrap();
    store.append_chat_batch("r", &[]).await.unwrap();
    let first: Vec<_> = (1..=3).map(|seq| chat(seq, &format!("m{seq}"))).collect();
    store.append_chat_batch("r", &first).await.unwrap();
    assert_eq!(store.recent_chat("r", 10).await.unwrap(), first);

    // Seq 3 is taken: the new 4 and 5 around it must not be stored either.
    let clash = [chat(4, "m4"), chat(3, "again"), chat(5, "m5")];
    let err = store.append_chat_batch("r", &clash).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "got {err:?}");
    assert_eq!(store.recent_chat("r", 10).await.unwrap(), first);

    // A longer batch than the writer ever sends, every field intact.
    let big: Vec<_> = (4..=603).map(|seq| chat(seq, &"é".repeat(50))).collect();
    store.append_chat_batch("r", &big).await.unwrap();
    let all = store.recent_chat("r", 1_000).await.unwrap();
    assert_eq!(all.len(), 603);
    assert_eq!(all[3..], big[..]);
}

async fn check_chat_rooms_separate(store: Arc<dyn Store>) {
    store.create_room(&room("a", "A", 2, 1)).await.unwrap();
    store.create_room(&room("b", "B", 2, 2)).await.unwrap();
    // Interleaved writes with overlapping seq numbers: (room, seq) is the key, not seq.
    for seq in 1..=5 {
        store
            .append_chat("a", &chat(seq, &format!("a{seq}")))
            .await
            .unwrap();
        store
            .append_chat("b", &chat(seq, &format!("b{seq}")))
            .await
            .unwrap();
    }
    store.append_chat("b", &chat(6, "b6")).await.unwrap();

    let a = store.recent_chat("a", 100).await.unwrap();
    let b = store.recent_chat("b", 100).await.unwrap();
    assert_eq!(
        a.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["a1", "a2", "a3", "a4", "a5"]
    );
    assert_eq!(
        b.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["b1", "b2", "b3", "b4", "b5", "b6"]
    );
    assert_eq!(
        store.recent_chat("a", 2).await.unwrap(),
        vec![chat(4, "a4"), chat(5, "a5")]
    );
}

async fn check_settings(store: Arc<dyn Store>) {
    assert_eq!(store.get_setting("admin_token_hash").await.unwrap(), None);

    store.set_setting("admin_token_hash", "abc").await.unwrap();
    store.set_setting("demo_room", "lobby").await.unwrap();
    assert_eq!(
        store
            .get_setting("admin_token_hash")
            .await
            .unwrap()
            .as_deref(),
        Some("abc")
    );

    store.set_setting("admin_token_hash", "def").await.unwrap();
    assert_eq!(
        store
            .get_setting("admin_token_hash")
            .await
            .unwrap()
            .as_deref(),
        Some("def")
    );
    // Overwriting one key leaves the others alone.
    assert_eq!(
        store.get_setting("demo_room").await.unwrap().as_deref(),
        Some("lobby")
    );

    store.set_setting("empty", "").await.unwrap();
    assert_eq!(
        store.get_setting("empty").await.unwrap().as_deref(),
        Some("")
    );
}

/// Writes through one store, reopens the same database (re-running migrations) while the
/// first is still open, and checks both see the data.
async fn check_reopen(url: &str) {
    let first = open(url).await.unwrap();
    first
        .create_room(&room("keep", "Kept", 3, 5))
        .await
        .unwrap();
    first.append_chat("keep", &chat(1, "hello")).await.unwrap();
    first.set_setting("k", "v").await.unwrap();

    let second = open(url).await.unwrap();
    assert_eq!(
        second.get_room("keep").await.unwrap(),
        Some(room("keep", "Kept", 3, 5))
    );
    assert_eq!(
        second.recent_chat("keep", 10).await.unwrap(),
        vec![chat(1, "hello")]
    );
    assert_eq!(second.get_setting("k").await.unwrap().as_deref(), Some("v"));

    second.set_setting("k", "w").await.unwrap();
    assert_eq!(first.get_setting("k").await.unwrap().as_deref(), Some("w"));
    drop(first);
    drop(second);

    let third = open(url).await.unwrap();
    assert_eq!(third.list_rooms().await.unwrap().len(), 1);
}

#[tokio::test]
async fn reopen_sqlite() {
    let dir = TempDir::new().unwrap();
    check_reopen(&sqlite_url(&dir)).await;
}

#[tokio::test]
async fn reopen_postgres() {
    let pg = fresh_database().await.unwrap();
    check_reopen(&pg.url).await;
    pg.drop().await.unwrap();
}

#[tokio::test]
async fn sqlite_creates_missing_directories() {
    let dir = TempDir::new().unwrap();
    for (url, file) in [
        (
            format!("sqlite:{}/a/b/rt.db", dir.path().display()),
            dir.path().join("a/b/rt.db"),
        ),
        (
            format!("sqlite://{}/c/rt.db", dir.path().display()),
            dir.path().join("c/rt.db"),
        ),
    ] {
        assert!(!file.exists());
        let store = open(&url).await.unwrap();
        store.set_setting("x", "1").await.unwrap();
        assert!(file.is_file(), "{} was not created", file.display());
        assert_eq!(store.get_setting("x").await.unwrap().as_deref(), Some("1"));
    }
}

#[tokio::test]
async fn sqlite_in_memory() {
    let store = open("sqlite::memory:").await.unwrap();
    store.create_room(&room("m", "Mem", 2, 1)).await.unwrap();
    assert_eq!(
        store.get_room("m").await.unwrap(),
        Some(room("m", "Mem", 2, 1))
    );
}

#[tokio::test]
async fn unsupported_url_store() {
    for url in ["mysql://localhost/db", "roundtable.db", ""] {
        match open(url).await {
            Err(StoreError::UnsupportedUrl(got)) => assert_eq!(got, url),
            Err(other) => panic!("{url:?}: expected UnsupportedUrl, got {other:?}"),
            Ok(_) => panic!("{url:?}: expected UnsupportedUrl, got a store"),
        }
    }
}

/// An agenda round-trips whole (plan, state and record); a second save replaces the first;
/// rooms keep their own; an agenda for no room is refused (the room id is a foreign key).
async fn check_agenda(store: Arc<dyn Store>) {
    use signaling::agenda::{Advocate, Agenda, Command, Phase, Plan, TimeUp};

    store.create_room(&room("a", "A", 10, 1)).await.unwrap();
    store.create_room(&room("b", "B", 10, 2)).await.unwrap();
    assert_eq!(store.load_agenda("a").await.unwrap(), None);

    let t0 = 1_765_000_000_000;
    let mut plan = Plan::skill_share(2);
    plan.tactics[0].title = "Données ouvertes — « cartes »".into();
    plan.tactics[0].advocate = Some(Advocate::Invite { id: "inv1".into() });
    plan.time_up = TimeUp::Mute;
    plan.hand_raise = true;
    let mut running = Agenda::new(plan);
    running.handle_command(t0, Command::Start, None).unwrap();
    running.note_floor("Zoë");
    running
        .handle_command(t0 + 5_000, Command::Pause, None)
        .unwrap();
    assert_eq!(running.state.phase, Phase::Paused);
    store.save_agenda("a", &running, t0 + 5_000).await.unwrap();
    assert_eq!(
        store.load_agenda("a").await.unwrap().as_ref(),
        Some(&running)
    );

    let mut ended = running.clone();
    ended
        .handle_command(t0 + 9_000, Command::End, None)
        .unwrap();
    assert_ne!(ended, running);
    store.save_agenda("a", &ended, t0 + 9_000).await.unwrap();
    assert_eq!(store.load_agenda("a").await.unwrap(), Some(ended.clone()));

    let other = Agenda::new(Plan::skill_share(5));
    store.save_agenda("b", &other, t0).await.unwrap();
    assert_eq!(store.load_agenda("b").await.unwrap(), Some(other));
    assert_eq!(store.load_agenda("a").await.unwrap(), Some(ended));

    let orphan = store.save_agenda("nope", &running, t0).await;
    assert!(orphan.is_err(), "an agenda for no room was stored");
    assert_eq!(store.load_agenda("nope").await.unwrap(), None);
}
