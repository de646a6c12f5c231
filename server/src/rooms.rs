//! Room records: their defaults and limits, new ones, changes to their rules, and the demo
//! room made on first start. The CLI and the admin API both go through here, so they take
//! and refuse the same things.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use signaling::policy::{RoomPolicy, WhenFull};
use signaling::roles::Role;

use crate::ids::random_id;
use crate::invites::{FACILITATOR_TTL, InviteSpec, MintError, mint, room_url};
use crate::store::{RoomRecord, Store};

/// Capacity of a room when none is given.
pub const DEFAULT_CAPACITY: u32 = 50;
/// The largest capacity a room may have.
pub const MAX_CAPACITY: u32 = 1000;
/// The longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

const DEMO_ROOM_KEY: &str = "demo_room_id";

/// The demo room's id, made on first start (or again if it was deleted).
pub(crate) async fn demo_room(store: &dyn Store) -> anyhow::Result<String> {
    if let Some(id) = store.get_setting(DEMO_ROOM_KEY).await?
        && store.get_room(&id).await?.is_some()
    {
        return Ok(id);
    }
    let room = new_room("Demo room".into(), DEFAULT_CAPACITY);
    store.create_room(&room).await?;
    store.set_setting(DEMO_ROOM_KEY, &room.id).await?;
    Ok(room.id)
}

/// A fresh room record with a random id.
pub fn new_room(title: String, capacity: u32) -> RoomRecord {
    let created_at = crate::room::now().unix_ms;
    RoomRecord {
        id: random_id(10),
        title,
        created_at,
        policy: RoomPolicy::new(capacity),
    }
}

/// Changes to a room's title and rules: the admin API's body, and what the CLI's flags
/// make. What is `None` (or absent from `caps`) stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomChanges {
    /// Title shown to participants, 1 to [`MAX_TITLE_CHARS`] characters.
    pub title: Option<String>,
    /// Most participants at once, 1 to [`MAX_CAPACITY`].
    pub capacity: Option<u32>,
    /// Role caps to change: a number sets one, `null` (`none` on the command line) lifts it.
    #[serde(default)]
    pub caps: BTreeMap<Role, Option<u32>>,
    /// Refuse or queue a join that finds no seat.
    pub when_full: Option<WhenFull>,
    /// Seat the first in the queue the moment a seat frees.
    pub auto_admit: Option<bool>,
    /// Whether a join without an invite gets in, as a participant.
    pub open_link: Option<bool>,
}

impl RoomChanges {
    /// Apply to `room`, then check the result. On an error `room` may be half changed.
    pub fn apply(&self, room: &mut RoomRecord) -> Result<(), String> {
        if let Some(title) = &self.title {
            room.title = title.trim().to_string();
        }
        let policy = &mut room.policy;
        if let Some(capacity) = self.capacity {
            policy.capacity = capacity;
        }
        for (role, cap) in &self.caps {
            policy.caps.set(*role, *cap);
        }
        if let Some(when_full) = self.when_full {
            policy.when_full = when_full;
        }
        if let Some(auto_admit) = self.auto_admit {
            policy.auto_admit = auto_admit;
        }
        if let Some(open_link) = self.open_link {
            policy.open_link = open_link;
        }
        check_room(room)
    }

    /// A new room with these settings (the defaults for the rest). A title is required.
    pub fn new_room(&self) -> Result<RoomRecord, String> {
        if self.title.is_none() {
            return Err("a room needs a title".into());
        }
        let mut room = new_room(String::new(), DEFAULT_CAPACITY);
        self.apply(&mut room)?;
        Ok(room)
    }
}

/// Refuse a title or rules that the CLI and the API would refuse.
pub fn check_room(room: &RoomRecord) -> Result<(), String> {
    let len = room.title.trim().chars().count();
    if len == 0 || len > MAX_TITLE_CHARS {
        return Err(format!("a title is 1 to {MAX_TITLE_CHARS} characters"));
    }
    let capacity = room.policy.capacity;
    if capacity == 0 || capacity > MAX_CAPACITY {
        return Err(format!("capacity must be 1 to {MAX_CAPACITY}"));
    }
    if room.policy.caps.facilitator == Some(0) {
        return Err("a room keeps at least one seat for a facilitator".into());
    }
    for role in Role::ALL {
        if let Some(cap) = room.policy.caps.of(role)
            && cap > capacity
        {
            return Err(format!(
                "the {role} cap ({cap}) is above the room's capacity ({capacity})"
            ));
        }
    }
    Ok(())
}

/// A room just made, with its facilitator's link and its open link.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedRoom {
    /// The room's id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its capacity.
    pub capacity: u32,
    /// The room's page, `/r/{room}`: the open link when it is on. Kept for scripts written
    /// before invites.
    pub join_url: String,
    /// The facilitator's invite link: reserved, unlimited uses, [`FACILITATOR_TTL`].
    pub facilitator_url: String,
    /// The open link, or `None` when the room has it off.
    pub open_url: Option<String>,
}

/// Store `room` and mint its facilitator's invite, with links under `public_url`.
pub async fn create_room(
    store: &dyn Store,
    public_url: &str,
    room: &RoomRecord,
) -> Result<CreatedRoom, MintError> {
    store.create_room(room).await?;
    let spec = InviteSpec {
        ttl: FACILITATOR_TTL,
        reserve: Some(true),
        ..InviteSpec::new(Role::Facilitator)
    };
    let minted = mint(store, public_url, &room.id, &spec, room.created_at).await?;
    Ok(CreatedRoom {
        id: room.id.clone(),
        title: room.title.clone(),
        capacity: room.policy.capacity,
        join_url: room_url(public_url, &room.id),
        facilitator_url: minted.url,
        open_url: room
            .policy
            .open_link
            .then(|| room_url(public_url, &room.id)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(json: &str) -> Result<RoomChanges, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn changes_apply_and_are_checked() {
        let mut room = new_room("Skill Share".into(), 30);
        let change = changes(
            r#"{"capacity":20,"caps":{"advocate":5,"observer":null},"when_full":"wait",
                "auto_admit":true,"open_link":false,"title":"  Renamed "}"#,
        )
        .unwrap();
        change.apply(&mut room).unwrap();
        let p = &room.policy;
        assert_eq!(room.title, "Renamed");
        assert_eq!(
            (p.capacity, p.caps.advocate, p.caps.observer),
            (20, Some(5), None)
        );
        assert_eq!(p.when_full, WhenFull::Wait);
        assert!(p.auto_admit && !p.open_link);
        // Absent fields keep what is; a cap set to null is lifted, others stay.
        changes(r#"{"caps":{"advocate":null,"participant":20}}"#)
            .unwrap()
            .apply(&mut room)
            .unwrap();
        assert_eq!(
            (room.policy.caps.advocate, room.policy.caps.participant),
            (None, Some(20))
        );
        assert_eq!(room.policy.capacity, 20);
        assert!(room.policy.auto_admit);
    }

    #[test]
    fn bad_rules_are_refused() {
        let room = new_room("Skill Share".into(), 10);
        for (json, says) in [
            (r#"{"capacity":0}"#, "capacity must be 1 to 1000"),
            (r#"{"capacity":1001}"#, "capacity must be 1 to 1000"),
            (r#"{"caps":{"advocate":11}}"#, "advocate cap (11) is above"),
            (r#"{"title":"   "}"#, "a title is 1 to 200"),
            (
                r#"{"caps":{"facilitator":0}}"#,
                "one seat for a facilitator",
            ),
        ] {
            let err = changes(json).unwrap().apply(&mut room.clone()).unwrap_err();
            assert!(err.contains(says), "{json}: {err}");
        }
        // Lowering the capacity below a cap is refused too.
        let mut capped = room.clone();
        changes(r#"{"caps":{"participant":8}}"#)
            .unwrap()
            .apply(&mut capped)
            .unwrap();
        assert!(
            changes(r#"{"capacity":5}"#)
                .unwrap()
                .apply(&mut capped)
                .is_err()
        );
        for json in [
            r#"{"caps":{"admin":1}}"#,
            r#"{"when_full":"queue"}"#,
            r#"{"name":"x"}"#,
            r#"{"capacity":-1}"#,
        ] {
            assert!(changes(json).is_err(), "{json}");
        }
        assert!(RoomChanges::default().new_room().is_err(), "no title");
    }

    #[test]
    fn a_new_room_takes_the_defaults_for_what_is_not_given() {
        let room = changes(r#"{"title":"Skill Share"}"#)
            .unwrap()
            .new_room()
            .unwrap();
        assert_eq!(room.policy, RoomPolicy::new(DEFAULT_CAPACITY));
        assert_eq!(room.id.len(), 10);
    }
}
