//! Invites, snapshots and the audit log in the store: every `check_*` body runs once on
//! SQLite and once on PostgreSQL, as in `store.rs`.

use std::sync::Arc;

use roundtable::store::{AuditEntry, InviteRecord, InviteRefusal, Store, StoreError};
use signaling::policy::Reservation;
use signaling::roles::Role;

use crate::both_backends;
use crate::store::room;

/// Invites of these tests expire at this time, unless they say otherwise.
const EXPIRES: i64 = 1_000_000;

fn invite(id: &str, room_id: &str, role: Role, created_at: i64) -> InviteRecord {
    InviteRecord {
        id: id.to_string(),
        room_id: room_id.to_string(),
        role,
        name: None,
        reserve: role.reserves_by_default(),
        max_uses: None,
        uses: 0,
        expires_at: EXPIRES,
        created_at,
        revoked_at: None,
    }
}

/// A stand-in for a secret's SHA-256: the store only compares it.
fn hash(id: &str) -> String {
    format!("hash-of-{id}")
}

async fn add(store: &dyn Store, invite: &InviteRecord) {
    store
        .create_invite(invite, &hash(&invite.id))
        .await
        .unwrap();
}

async fn listed(store: &dyn Store, room_id: &str, id: &str) -> InviteRecord {
    let invites = store.list_invites(room_id).await.unwrap();
    invites.into_iter().find(|i| i.id == id).expect("listed")
}

async fn rev(store: &dyn Store, room_id: &str) -> i64 {
    store.room_snapshot(room_id, 0).await.unwrap().unwrap().rev
}

both_backends!(check_invites_list_and_revoke => invites_list_and_revoke_sqlite, invites_list_and_revoke_postgres);
both_backends!(check_use_and_release => use_and_release_sqlite, use_and_release_postgres);
both_backends!(check_refusals => refusals_sqlite, refusals_postgres);
both_backends!(check_racing_uses => racing_uses_sqlite, racing_uses_postgres);
both_backends!(check_snapshot => snapshot_sqlite, snapshot_postgres);
both_backends!(check_create_at_rev => create_at_rev_sqlite, create_at_rev_postgres);
both_backends!(check_audit => audit_sqlite, audit_postgres);

async fn check_invites_list_and_revoke(store: Arc<dyn Store>) {
    let store = store.as_ref();
    store.create_room(&room("r", "R", 10, 1)).await.unwrap();
    store.create_room(&room("other", "O", 10, 1)).await.unwrap();
    assert!(store.list_invites("r").await.unwrap().is_empty());

    let mut named = invite("a", "r", Role::Advocate, 10);
    named.name = Some("Zoë Ó Briain".into());
    named.max_uses = Some(u32::MAX);
    let observer = invite("b", "r", Role::Observer, 20);
    let elsewhere = invite("c", "other", Role::Facilitator, 30);
    for i in [&named, &observer, &elsewhere] {
        add(store, i).await;
    }
    // Newest first, every field intact, only the room's own.
    assert_eq!(
        store.list_invites("r").await.unwrap(),
        vec![observer.clone(), named.clone()]
    );

    // The hash and the id are unique; an invite to no room is refused by the foreign key.
    let same_hash = invite("d", "r", Role::Observer, 40);
    let err = store
        .create_invite(&same_hash, &hash("a"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "got {err:?}");
    let err = store.create_invite(&named, "fresh").await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "got {err:?}");
    let ghost = invite("e", "ghost", Role::Observer, 40);
    let err = store.create_invite(&ghost, &hash("e")).await.unwrap_err();
    assert!(matches!(err, StoreError::Db(_)), "got {err:?}");
    assert_eq!(store.list_invites("r").await.unwrap().len(), 2);

    assert!(!store.revoke_invite("r", "nope", 50).await.unwrap());
    assert!(
        !store.revoke_invite("r", "c", 50).await.unwrap(),
        "another room's invite"
    );
    assert_eq!(listed(store, "other", "c").await.revoked_at, None);
    assert!(store.revoke_invite("r", "a", 50).await.unwrap());
    assert!(store.revoke_invite("r", "a", 60).await.unwrap());
    assert_eq!(
        listed(store, "r", "a").await.revoked_at,
        Some(50),
        "the first revocation's time stays"
    );
    assert_eq!(listed(store, "r", "b").await.revoked_at, None);
}

async fn check_use_and_release(store: Arc<dyn Store>) {
    let store = store.as_ref();
    store.create_room(&room("r", "R", 10, 1)).await.unwrap();
    let mut twice = invite("t", "r", Role::Participant, 1);
    twice.max_uses = Some(2);
    add(store, &twice).await;

    let first = store.use_invite("r", &hash("t"), 5).await.unwrap().unwrap();
    assert_eq!((first.id.as_str(), first.uses), ("t", 1));
    assert_eq!(first.role, Role::Participant);
    let second = store.use_invite("r", &hash("t"), 5).await.unwrap().unwrap();
    assert_eq!(second.uses, 2);
    assert_eq!(
        store.use_invite("r", &hash("t"), 5).await.unwrap(),
        Err(InviteRefusal::UsedUp)
    );
    assert_eq!(
        listed(store, "r", "t").await.uses,
        2,
        "a refusal takes no use"
    );

    // A release gives one back, and the next join takes it.
    store.release_invite("t").await.unwrap();
    assert_eq!(listed(store, "r", "t").await.uses, 1);
    let again = store.use_invite("r", &hash("t"), 5).await.unwrap().unwrap();
    assert_eq!(again.uses, 2);

    // Never below nothing.
    for _ in 0..3 {
        store.release_invite("t").await.unwrap();
    }
    assert_eq!(listed(store, "r", "t").await.uses, 0);
    store.release_invite("nope").await.unwrap();

    // Unlimited uses stay unlimited.
    add(store, &invite("u", "r", Role::Observer, 2)).await;
    for n in 1..=5 {
        let used = store.use_invite("r", &hash("u"), 5).await.unwrap().unwrap();
        assert_eq!(used.uses, n);
    }
}

/// Each refusal, and their precedence: invalid, wrong room, revoked, expired, used up. The
/// check answers as the use would, and takes nothing.
async fn check_refusals(store: Arc<dyn Store>) {
    let store = store.as_ref();
    store.create_room(&room("r", "R", 10, 1)).await.unwrap();
    store.create_room(&room("other", "O", 10, 1)).await.unwrap();
    let spent = |id: &str, room_id: &str| InviteRecord {
        max_uses: Some(1),
        uses: 1,
        ..invite(id, room_id, Role::Participant, 1)
    };
    // Every later reason applies too, so only precedence decides.
    let all_wrong = InviteRecord {
        revoked_at: Some(2),
        expires_at: 10,
        ..spent("wrong", "other")
    };
    let revoked = InviteRecord {
        revoked_at: Some(2),
        expires_at: 10,
        ..spent("revoked", "r")
    };
    let expired = InviteRecord {
        expires_at: 10,
        ..spent("expired", "r")
    };
    let used_up = spent("used", "r");
    let live = invite("live", "r", Role::Advocate, 1);
    for i in [&all_wrong, &revoked, &expired, &used_up, &live] {
        add(store, i).await;
    }
    let at = 10; // The expiry instant itself is past it.
    for (secret_of, expected) in [
        ("nobody", Err(InviteRefusal::Invalid)),
        ("wrong", Err(InviteRefusal::WrongRoom)),
        ("revoked", Err(InviteRefusal::Revoked)),
        ("expired", Err(InviteRefusal::Expired)),
        ("used", Err(InviteRefusal::UsedUp)),
        ("live", Ok("live")),
    ] {
        let expected = expected.map(String::from);
        let checked = store.check_invite("r", &hash(secret_of), at).await.unwrap();
        assert_eq!(checked.map(|i| i.id), expected, "{secret_of}");
        let used = store.use_invite("r", &hash(secret_of), at).await.unwrap();
        assert_eq!(used.map(|i| i.id), expected, "{secret_of}");
    }
    assert_eq!(
        listed(store, "r", "live").await.uses,
        1,
        "only the use took one"
    );
    assert_eq!(
        store
            .check_invite("r", &hash("live"), EXPIRES)
            .await
            .unwrap(),
        Err(InviteRefusal::Expired)
    );
    // The other room's invite admits to the other room.
    let mut fine = all_wrong.clone();
    fine.id = "fine".into();
    fine.revoked_at = None;
    fine.uses = 0;
    fine.expires_at = EXPIRES;
    add(store, &fine).await;
    assert!(
        store
            .use_invite("other", &hash("fine"), at)
            .await
            .unwrap()
            .is_ok()
    );
    assert_eq!(
        store.use_invite("r", &hash("fine"), at).await.unwrap(),
        Err(InviteRefusal::WrongRoom)
    );
}

/// 20 joins race for an invite of 5 uses: exactly 5 win.
async fn check_racing_uses(store: Arc<dyn Store>) {
    store.create_room(&room("r", "R", 50, 1)).await.unwrap();
    let five = InviteRecord {
        max_uses: Some(5),
        ..invite("five", "r", Role::Participant, 1)
    };
    add(store.as_ref(), &five).await;
    let racers: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.use_invite("r", &hash("five"), 5).await })
        })
        .collect();
    let mut won = Vec::new();
    for racer in racers {
        match racer.await.unwrap().unwrap() {
            Ok(invite) => won.push(invite.uses),
            Err(refusal) => assert_eq!(refusal, InviteRefusal::UsedUp),
        }
    }
    won.sort_unstable();
    assert_eq!(won, [1, 2, 3, 4, 5], "each winner took its own use");
    assert_eq!(listed(store.as_ref(), "r", "five").await.uses, 5);
}

/// A snapshot holds the room's rules and its live reserved invites; its revision grows
/// with every change to either.
async fn check_snapshot(store: Arc<dyn Store>) {
    let store = store.as_ref();
    assert_eq!(store.room_snapshot("ghost", 5).await.unwrap(), None);
    let mut r = room("r", "R", 10, 1);
    r.policy.caps.set(Role::Advocate, Some(3));
    store.create_room(&r).await.unwrap();
    store.create_room(&room("other", "O", 10, 1)).await.unwrap();
    let empty = store.room_snapshot("r", 5).await.unwrap().unwrap();
    assert_eq!((empty.rev, &empty.policy), (0, &r.policy));
    assert!(empty.reservations.is_empty());

    let facilitator = invite("f", "r", Role::Facilitator, 1);
    let spent = InviteRecord {
        max_uses: Some(1),
        ..invite("a", "r", Role::Advocate, 2)
    };
    let unreserved = invite("p", "r", Role::Participant, 3);
    let short = InviteRecord {
        expires_at: 100,
        ..invite("s", "r", Role::Advocate, 4)
    };
    let revoked = invite("x", "r", Role::Advocate, 5);
    let elsewhere = invite("o", "other", Role::Advocate, 6);
    let mut last = 0;
    for i in [&facilitator, &spent, &unreserved, &short, &revoked] {
        add(store, i).await;
        let now = rev(store, "r").await;
        assert!(now > last, "creating `{}` moved the revision", i.id);
        last = now;
    }
    add(store, &elsewhere).await;
    assert_eq!(rev(store, "r").await, last, "another room's invite");
    store.use_invite("r", &hash("a"), 5).await.unwrap().unwrap();
    assert!(store.revoke_invite("r", "x", 6).await.unwrap());
    assert!(rev(store, "r").await > last, "a revocation moves it");
    last = rev(store, "r").await;

    // A spent invite holds its seat too.
    let reservation = |i: &InviteRecord, _spent: bool| Reservation {
        invite: i.id.clone(),
        role: i.role,
        expires_at: i.expires_at,
    };
    let snapshot = store.room_snapshot("r", 50).await.unwrap().unwrap();
    assert_eq!(
        snapshot.reservations,
        [
            reservation(&facilitator, false),
            reservation(&spent, true),
            reservation(&short, false),
        ]
    );
    // Past `short`'s expiry it holds nothing.
    let later = store.room_snapshot("r", 100).await.unwrap().unwrap();
    assert_eq!(later.reservations.len(), 2);

    let mut changed = r.clone();
    changed.policy.capacity = 4;
    changed.policy.caps.set(Role::Advocate, None);
    store.update_room(&changed).await.unwrap();
    let updated = store.room_snapshot("r", 50).await.unwrap().unwrap();
    assert!(updated.rev > last, "an update moves it");
    assert_eq!(updated.policy, changed.policy);
    assert_eq!(updated.reservations, snapshot.reservations);
}

/// With an expected revision, an invite lands only if nothing changed since.
async fn check_create_at_rev(store: Arc<dyn Store>) {
    let store = store.as_ref();
    store.create_room(&room("r", "R", 10, 1)).await.unwrap();
    let seen = rev(store, "r").await;
    let first = invite("one", "r", Role::Advocate, 1);
    assert!(
        store
            .create_invite_at(&first, &hash("one"), Some(seen))
            .await
            .unwrap()
    );
    let stale = invite("two", "r", Role::Advocate, 2);
    assert!(
        !store
            .create_invite_at(&stale, &hash("two"), Some(seen))
            .await
            .unwrap()
    );
    assert_eq!(
        store.check_invite("r", &hash("two"), 5).await.unwrap(),
        Err(InviteRefusal::Invalid),
        "nothing of it was written"
    );
    assert_eq!(rev(store, "r").await, seen + 1);
    let fresh = rev(store, "r").await;
    assert!(
        store
            .create_invite_at(&stale, &hash("two"), Some(fresh))
            .await
            .unwrap()
    );
    assert!(
        store
            .create_invite_at(
                &invite("three", "r", Role::Observer, 3),
                &hash("three"),
                None
            )
            .await
            .unwrap()
    );
    assert_eq!(store.list_invites("r").await.unwrap().len(), 3);
}

async fn check_audit(store: Arc<dyn Store>) {
    let store = store.as_ref();
    store.create_room(&room("a", "A", 10, 1)).await.unwrap();
    store.create_room(&room("b", "B", 10, 1)).await.unwrap();
    assert!(store.audit_log("a").await.unwrap().is_empty());
    let entry = |ts: i64, action: &str, target: Option<&str>| AuditEntry {
        ts,
        actor: "p1".into(),
        actor_name: "Facilitator Fay".into(),
        action: action.into(),
        target: target.map(String::from),
        target_name: target.map(|t| format!("Person {t}")),
        detail: (action == "remove").then(|| "barred".into()),
    };
    // Appended order, not time order: two entries of one millisecond keep theirs.
    let entries = [
        entry(30, "lock", None),
        entry(20, "mute", Some("p2")),
        entry(20, "remove", Some("p3")),
        entry(40, "unlock", None),
    ];
    for (i, e) in entries.iter().enumerate() {
        store.append_audit("a", e).await.unwrap();
        if i == 1 {
            store
                .append_audit("b", &entry(1, "admit", Some("w1")))
                .await
                .unwrap();
        }
    }
    assert_eq!(store.audit_log("a").await.unwrap(), entries);
    assert_eq!(
        store.audit_log("b").await.unwrap(),
        [entry(1, "admit", Some("w1"))]
    );
    let err = store.append_audit("ghost", &entries[0]).await.unwrap_err();
    assert!(matches!(err, StoreError::Db(_)), "got {err:?}");
}
