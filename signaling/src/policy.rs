//! A room's admission rules as the store keeps them, and what a join brings with it. The room
//! core decides with these; the server reads them from the store and passes them in.

use serde::{Deserialize, Serialize};

use crate::roles::Role;

/// What happens to a join when no seat is free (or the room is locked).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Refuse it with `room_full` (or `role_full`, `room_locked`).
    #[default]
    Refuse,
    /// Put it in the waiting room, an ordered queue.
    Wait,
}

/// Most seats per role; `None` is no cap beyond the room's capacity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleCaps {
    /// Facilitators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facilitator: Option<u32>,
    /// Advocates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advocate: Option<u32>,
    /// Participants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<u32>,
    /// Observers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observer: Option<u32>,
}

impl RoleCaps {
    /// The cap of one role.
    pub fn of(&self, role: Role) -> Option<u32> {
        match role {
            Role::Facilitator => self.facilitator,
            Role::Advocate => self.advocate,
            Role::Participant => self.participant,
            Role::Observer => self.observer,
        }
    }

    /// Set the cap of one role.
    pub fn set(&mut self, role: Role, cap: Option<u32>) {
        match role {
            Role::Facilitator => self.facilitator = cap,
            Role::Advocate => self.advocate = cap,
            Role::Participant => self.participant = cap,
            Role::Observer => self.observer = cap,
        }
    }
}

/// A room's admission rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomPolicy {
    /// Most participants at once, waiting room not counted.
    pub capacity: u32,
    /// Most participants per role.
    pub caps: RoleCaps,
    /// Refuse or queue a join that finds no seat.
    pub when_full: WhenFull,
    /// Seat the first fitting person in the queue the moment a seat frees.
    pub auto_admit: bool,
    /// Whether a join without an invite is let in, as a participant.
    pub open_link: bool,
}

impl RoomPolicy {
    /// The rules of a new room of `capacity`: no role caps, refuse when full, no auto-admit,
    /// open link on.
    pub fn new(capacity: u32) -> Self {
        RoomPolicy {
            capacity,
            caps: RoleCaps::default(),
            when_full: WhenFull::Refuse,
            auto_admit: false,
            open_link: true,
        }
    }
}

/// A seat held for an invite: nobody else takes it while the invite is live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The invite's id.
    pub invite: String,
    /// The role it admits.
    pub role: Role,
    /// Unix ms after which it no longer holds the seat. It holds it until then, or until it
    /// is revoked, even once its uses are spent: the room cannot tell a spent invite whose
    /// holder is on the way in from one whose holder has gone for good. So a reserved invite
    /// is best given no use limit (the default): its holder can come back after a drop.
    pub expires_at: i64,
}

/// A room's rules and reserved seats as the store had them, with the store's revision: the
/// room keeps the highest revision it has seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Increases with every change to the room's rules or invites.
    pub rev: i64,
    /// The rules.
    pub policy: RoomPolicy,
    /// Live reserved invites.
    pub reservations: Vec<Reservation>,
}

/// What the server learnt of a join before it reached the room: the role, and the invite it
/// came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The role to seat it as.
    pub role: Role,
    /// The invite's id, or `None` for the open link.
    pub invite: Option<String>,
    /// A display name the invite fixes; the join's own name is then ignored.
    pub name: Option<String>,
}

impl Ticket {
    /// A join through the room's open link.
    pub fn open_link() -> Self {
        Ticket {
            role: Role::Participant,
            invite: None,
            name: None,
        }
    }
}
