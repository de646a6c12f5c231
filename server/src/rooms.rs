//! Room records: their defaults and limits, new ones, and the demo room made on first start.

use crate::ids::random_id;
use crate::store::{RoomRecord, Store};

/// Capacity of a room when none is given.
pub const DEFAULT_CAPACITY: u32 = 50;
/// The largest capacity a room may have.
pub const MAX_CAPACITY: u32 = 1000;

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
        policy: signaling::policy::RoomPolicy::new(capacity),
    }
}
