//! Roles and what each may do. [`allows`] is the one check: the room core asks it before
//! every action a participant requests, and the server asks it before it takes a publish
//! offer. A client that hides a button is never the check.

use serde::{Deserialize, Serialize};

/// A participant's role in a room. Admins are not a room role: they use the admin token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs the call: moderates, admits, locks.
    Facilitator,
    /// Presents a tactic.
    Advocate,
    /// Takes part: speaks, shows video, chats.
    Participant,
    /// Listens and chats; never publishes.
    Observer,
}

impl Role {
    /// Every role, in order of authority.
    pub const ALL: [Role; 4] = [
        Role::Facilitator,
        Role::Advocate,
        Role::Participant,
        Role::Observer,
    ];

    /// The role as it appears on the wire and in the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Facilitator => "facilitator",
            Role::Advocate => "advocate",
            Role::Participant => "participant",
            Role::Observer => "observer",
        }
    }

    /// Whether an invite for this role reserves a seat unless told otherwise.
    pub fn reserves_by_default(self) -> bool {
        matches!(self, Role::Facilitator | Role::Advocate)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role `{s}`: use facilitator, advocate, participant or observer")
            })
    }
}

/// Something a participant asks the room to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Send audio or video (a publish offer, a published track).
    Publish,
    /// Send a chat message.
    Chat,
    /// Raise or lower one's own hand.
    RaiseHand,
    /// Lower someone else's hand.
    LowerAnyHand,
    /// Stop or allow someone's audio or video (the gate).
    Mute,
    /// Remove someone, optionally barring their invite.
    Remove,
    /// Lock or unlock the room.
    Lock,
    /// Admit or decline someone in the waiting room, and see the queue.
    Admit,
    /// Run and edit the agenda, and give and take back the floor.
    RunAgenda,
    /// Start and stop recording the room (only those who consent are recorded).
    Record,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 10] = [
        Action::Publish,
        Action::Chat,
        Action::RaiseHand,
        Action::LowerAnyHand,
        Action::Mute,
        Action::Remove,
        Action::Lock,
        Action::Admit,
        Action::RunAgenda,
        Action::Record,
    ];
}

/// Who may do what: one row per action, one column per role, in [`Role::ALL`]'s order
/// (facilitator, advocate, participant, observer).
const TABLE: [(Action, [bool; 4]); 10] = [
    (Action::Publish, [true, true, true, false]),
    (Action::Chat, [true, true, true, true]),
    (Action::RaiseHand, [true, true, true, false]),
    (Action::LowerAnyHand, [true, false, false, false]),
    (Action::Mute, [true, false, false, false]),
    (Action::Remove, [true, false, false, false]),
    (Action::Lock, [true, false, false, false]),
    (Action::Admit, [true, false, false, false]),
    (Action::RunAgenda, [true, false, false, false]),
    (Action::Record, [true, false, false, false]),
];

/// Whether `role` may do `action`.
pub fn allows(role: Role, action: Action) -> bool {
    let column = Role::ALL
        .iter()
        .position(|r| *r == role)
        .expect("every role has a column");
    TABLE
        .iter()
        .find(|(a, _)| *a == action)
        .is_some_and(|(_, row)| row[column])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every cell, written out once more by hand: a change to the table must change this too.
    #[test]
    fn every_cell_of_the_table() {
        use Action::*;
        use Role::*;
        let expected: &[(Role, Action, bool)] = &[
            (Facilitator, Publish, true),
            (Facilitator, Chat, true),
            (Facilitator, RaiseHand, true),
            (Facilitator, LowerAnyHand, true),
            (Facilitator, Mute, true),
            (Facilitator, Remove, true),
            (Facilitator, Lock, true),
            (Facilitator, Admit, true),
            (Facilitator, RunAgenda, true),
            (Facilitator, Record, true),
            (Advocate, Publish, true),
            (Advocate, Chat, true),
            (Advocate, RaiseHand, true),
            (Advocate, LowerAnyHand, false),
            (Advocate, Mute, false),
            (Advocate, Remove, false),
            (Advocate, Lock, false),
            (Advocate, Admit, false),
            (Advocate, RunAgenda, false),
            (Advocate, Record, false),
            (Participant, Publish, true),
            (Participant, Chat, true),
            (Participant, RaiseHand, true),
            (Participant, LowerAnyHand, false),
            (Participant, Mute, false),
            (Participant, Remove, false),
            (Participant, Lock, false),
            (Participant, Admit, false),
            (Participant, RunAgenda, false),
            (Participant, Record, false),
            (Observer, Publish, false),
            (Observer, Chat, true),
            (Observer, RaiseHand, false),
            (Observer, LowerAnyHand, false),
            (Observer, Mute, false),
            (Observer, Remove, false),
            (Observer, Lock, false),
            (Observer, Admit, false),
            (Observer, RunAgenda, false),
            (Observer, Record, false),
        ];
        assert_eq!(expected.len(), Role::ALL.len() * Action::ALL.len());
        for (role, action, allowed) in expected {
            assert_eq!(allows(*role, *action), *allowed, "{role} {action:?}");
        }
    }

    #[test]
    fn roles_parse_and_print() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{role}\""));
        }
        assert!("admin".parse::<Role>().is_err());
        assert!(Role::Advocate.reserves_by_default());
        assert!(!Role::Observer.reserves_by_default());
    }
}
