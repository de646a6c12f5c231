//! `roundtable room ...`: the room commands' flags, parsed to what `rooms` and `invites`
//! take. The commands themselves run in `main.rs`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use signaling::agenda::plan::MAX_TACTICS;
use signaling::policy::WhenFull;
use signaling::roles::Role;

use crate::invites::InviteSpec;
use crate::rooms::RoomChanges;

/// `roundtable room ...`: each writes the database directly. A running room sees a change
/// at its next join; the admin API hands it over at once.
#[derive(Debug, Subcommand)]
pub enum RoomCommand {
    /// Create a room; print its facilitator's link and its open link.
    Create(CreateArgs),
    /// List rooms.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Mint an invite link to a room and print it (the only time it is shown).
    Invite(InviteArgs),
    /// List a room's invites and their states (never their secrets).
    Invites {
        /// The room's id.
        room: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an invite: it admits nobody from now on.
    Revoke {
        /// The room's id.
        room: String,
        /// The invite's id, as `room invites` lists it.
        invite: String,
    },
    /// Change a room's rules; what is not given stays.
    Update(UpdateArgs),
    /// Print a room's audit log, oldest first.
    Audit {
        /// The room's id.
        room: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print a room's agenda and its last run, planned against actual; or replace its plan.
    Agenda(AgendaArgs),
}

/// `roundtable room agenda`.
#[derive(Debug, Args)]
pub struct AgendaArgs {
    /// The room's id.
    pub room: String,
    /// Replace the plan with the one in this JSON file. Refused while the agenda is under
    /// way. A room in session does not see it (its next agenda change overwrites it):
    /// then use the web client or the API.
    #[arg(long, value_name = "FILE.json", conflicts_with = "template")]
    pub set: Option<PathBuf>,
    /// Replace the plan with the Skill Share template of N tactics (1 to 12). Refused while
    /// the agenda is under way.
    #[arg(long, value_name = "N", value_parser = parse_tactics)]
    pub template: Option<usize>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Where a new plan comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewPlan {
    /// A JSON file.
    File(PathBuf),
    /// The Skill Share template with this many tactics.
    Template(usize),
}

impl AgendaArgs {
    /// The plan to store, if the command changes it.
    pub fn new_plan(&self) -> Option<NewPlan> {
        match (&self.set, self.template) {
            (Some(path), _) => Some(NewPlan::File(path.clone())),
            (None, Some(n)) => Some(NewPlan::Template(n)),
            (None, None) => None,
        }
    }
}

/// `roundtable room create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Title shown to participants.
    #[arg(long)]
    pub title: String,
    /// Most participants at once (1 to 1000).
    #[arg(long, default_value_t = crate::rooms::DEFAULT_CAPACITY)]
    pub capacity: u32,
    /// Most participants of one role, as ROLE=N (repeat for more roles).
    #[arg(long = "cap", value_name = "ROLE=N", value_parser = parse_cap)]
    pub caps: Vec<(Role, Option<u32>)>,
    /// What a join that finds no seat gets: `refuse` (room_full) or `wait` (the waiting
    /// room).
    #[arg(long, value_name = "refuse|wait", value_parser = parse_when_full)]
    pub when_full: Option<WhenFull>,
    /// Seat the first in the waiting room the moment a seat frees.
    #[arg(long)]
    pub auto_admit: bool,
    /// Turn the open link off: only invites get in.
    #[arg(long)]
    pub no_open_link: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl CreateArgs {
    /// The new room's settings.
    pub fn changes(&self) -> RoomChanges {
        RoomChanges {
            title: Some(self.title.clone()),
            capacity: Some(self.capacity),
            caps: self.caps.iter().copied().collect(),
            when_full: self.when_full,
            auto_admit: Some(self.auto_admit),
            open_link: Some(!self.no_open_link),
        }
    }
}

/// `roundtable room invite`.
#[derive(Debug, Args)]
pub struct InviteArgs {
    /// The room's id.
    pub room: String,
    /// The role it gives: facilitator, advocate, participant or observer.
    #[arg(long)]
    pub role: Role,
    /// A display name it fixes.
    #[arg(long)]
    pub name: Option<String>,
    /// How long it lasts: 90s, 30m, 12h, 7d; at most 365d.
    #[arg(long, value_parser = crate::invites::parse_duration, default_value = "7d")]
    pub expires: Duration,
    /// Hold a seat for it (the default for facilitator and advocate).
    #[arg(long, conflicts_with = "no_reserve")]
    pub reserve: bool,
    /// Hold no seat for it (the default for participant and observer).
    #[arg(long)]
    pub no_reserve: bool,
    /// How many times it seats someone [default: unlimited].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub uses: Option<u32>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

impl InviteArgs {
    /// What to mint.
    pub fn spec(&self) -> InviteSpec {
        InviteSpec {
            role: self.role,
            name: self.name.clone(),
            ttl: self.expires,
            reserve: match (self.reserve, self.no_reserve) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            max_uses: self.uses,
        }
    }
}

/// `roundtable room update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The room's id.
    pub room: String,
    /// Most participants at once (1 to 1000).
    #[arg(long)]
    pub capacity: Option<u32>,
    /// A role's cap, as ROLE=N, or ROLE=none to lift it (repeat for more roles).
    #[arg(long = "cap", value_name = "ROLE=N|ROLE=none", value_parser = parse_cap)]
    pub caps: Vec<(Role, Option<u32>)>,
    /// `refuse` or `wait`.
    #[arg(long, value_name = "refuse|wait", value_parser = parse_when_full)]
    pub when_full: Option<WhenFull>,
    /// Seat the first in the waiting room the moment a seat frees.
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    pub auto_admit: Option<bool>,
    /// Let people in without an invite, as participants.
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    pub open_link: Option<bool>,
}

impl UpdateArgs {
    /// The changes to make.
    pub fn changes(&self) -> RoomChanges {
        RoomChanges {
            title: None,
            capacity: self.capacity,
            caps: self.caps.iter().copied().collect(),
            when_full: self.when_full,
            auto_admit: self.auto_admit,
            open_link: self.open_link,
        }
    }
}

/// `ROLE=N` or `ROLE=none`.
fn parse_cap(text: &str) -> Result<(Role, Option<u32>), String> {
    let (role, cap) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: write ROLE=N or ROLE=none, like advocate=5"))?;
    let role = role.parse::<Role>()?;
    let cap = match cap {
        "none" => None,
        n => Some(
            n.parse::<u32>()
                .map_err(|_| format!("`{n}` is not a number of seats (or `none`)"))?,
        ),
    };
    Ok((role, cap))
}

fn parse_when_full(text: &str) -> Result<WhenFull, String> {
    match text {
        "refuse" => Ok(WhenFull::Refuse),
        "wait" => Ok(WhenFull::Wait),
        _ => Err(format!("`{text}`: use refuse or wait")),
    }
}

fn parse_tactics(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_TACTICS).contains(&n) => Ok(n),
        _ => Err(format!(
            "`{text}`: a number of tactics from 1 to {MAX_TACTICS}"
        )),
    }
}

fn parse_on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("`{text}`: use on or off")),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::config::{Cli, Command};

    /// `roundtable room ARGS...`'s command, or clap's error.
    fn room(args: &[&str]) -> Result<RoomCommand, clap::Error> {
        let argv = ["roundtable", "room"].iter().chain(args).copied();
        match Cli::try_parse_from(argv)?.command {
            Some(Command::Room { command }) => Ok(command),
            other => panic!("not a room command: {other:?}"),
        }
    }

    #[test]
    fn room_create_takes_the_rules() {
        let Ok(RoomCommand::Create(args)) = room(&[
            "create",
            "--title",
            "Skill Share",
            "--capacity",
            "30",
            "--cap",
            "advocate=5",
            "--cap",
            "observer=none",
            "--when-full",
            "wait",
            "--auto-admit",
            "--no-open-link",
            "--json",
        ]) else {
            panic!("not a create");
        };
        let changes = args.changes();
        assert_eq!(changes.title.as_deref(), Some("Skill Share"));
        assert_eq!(changes.capacity, Some(30));
        assert_eq!(
            changes.caps.into_iter().collect::<Vec<_>>(),
            [(Role::Advocate, Some(5)), (Role::Observer, None)]
        );
        assert_eq!(changes.when_full, Some(WhenFull::Wait));
        assert_eq!(
            (changes.auto_admit, changes.open_link),
            (Some(true), Some(false))
        );
        assert!(args.json);
        let Ok(RoomCommand::Create(plain)) = room(&["create", "--title", "T"]) else {
            panic!("not a create");
        };
        let changes = plain.changes();
        assert_eq!(changes.capacity, Some(crate::rooms::DEFAULT_CAPACITY));
        assert!(changes.caps.is_empty() && changes.when_full.is_none());
        assert_eq!(
            (changes.auto_admit, changes.open_link),
            (Some(false), Some(true))
        );
    }

    #[test]
    fn room_invite_takes_its_defaults_and_overrides() {
        let Ok(RoomCommand::Invite(args)) = room(&["invite", "r1", "--role", "advocate"]) else {
            panic!("not an invite");
        };
        assert_eq!(args.room, "r1");
        assert_eq!(args.spec(), InviteSpec::new(Role::Advocate));
        let Ok(RoomCommand::Invite(args)) = room(&[
            "invite",
            "r1",
            "--role",
            "observer",
            "--name",
            "Zoë",
            "--expires",
            "12h",
            "--reserve",
            "--uses",
            "3",
            "--json",
        ]) else {
            panic!("not an invite");
        };
        let spec = args.spec();
        assert_eq!(spec.name.as_deref(), Some("Zoë"));
        assert_eq!(spec.ttl, Duration::from_secs(12 * 3600));
        assert_eq!((spec.reserve, spec.max_uses), (Some(true), Some(3)));
        let Ok(RoomCommand::Invite(args)) =
            room(&["invite", "r1", "--role", "facilitator", "--no-reserve"])
        else {
            panic!("not an invite");
        };
        assert_eq!(args.spec().reserve, Some(false));
    }

    #[test]
    fn room_update_lists_and_revoke_parse() {
        let Ok(RoomCommand::Update(args)) = room(&[
            "update",
            "r1",
            "--capacity",
            "12",
            "--cap",
            "advocate=none",
            "--when-full",
            "refuse",
            "--auto-admit",
            "on",
            "--open-link",
            "off",
        ]) else {
            panic!("not an update");
        };
        let changes = args.changes();
        assert_eq!((changes.title, changes.capacity), (None, Some(12)));
        assert_eq!(changes.caps.get(&Role::Advocate), Some(&None));
        assert_eq!(changes.when_full, Some(WhenFull::Refuse));
        assert_eq!(
            (changes.auto_admit, changes.open_link),
            (Some(true), Some(false))
        );
        let Ok(RoomCommand::Update(args)) = room(&["update", "r1"]) else {
            panic!("not an update");
        };
        assert_eq!(args.changes(), RoomChanges::default());
        assert!(matches!(
            room(&["invites", "r1", "--json"]),
            Ok(RoomCommand::Invites { json: true, .. })
        ));
        assert!(matches!(
            room(&["revoke", "r1", "inv9"]),
            Ok(RoomCommand::Revoke { room, invite }) if room == "r1" && invite == "inv9"
        ));
        assert!(matches!(
            room(&["audit", "r1"]),
            Ok(RoomCommand::Audit { json: false, .. })
        ));
    }

    #[test]
    fn room_agenda_shows_sets_or_templates() {
        let agenda = |args: &[&str]| match room(args) {
            Ok(RoomCommand::Agenda(a)) => (a.room.clone(), a.new_plan(), a.json),
            other => panic!("not an agenda: {other:?}"),
        };
        assert_eq!(agenda(&["agenda", "r1"]), ("r1".into(), None, false));
        assert_eq!(
            agenda(&["agenda", "r1", "--set", "plan.json", "--json"]),
            ("r1".into(), Some(NewPlan::File("plan.json".into())), true)
        );
        assert_eq!(
            agenda(&["agenda", "r1", "--template", "12"]).1,
            Some(NewPlan::Template(12))
        );
        assert_eq!(
            agenda(&["agenda", "r1", "--template", "1"]).1,
            Some(NewPlan::Template(1))
        );
    }

    #[test]
    fn bad_room_flags_are_refused() {
        for args in [
            &["invite", "r1", "--role", "admin"][..],
            &["invite", "r1"],
            &[
                "invite",
                "r1",
                "--role",
                "advocate",
                "--reserve",
                "--no-reserve",
            ],
            &["invite", "r1", "--role", "advocate", "--uses", "0"],
            &["invite", "r1", "--role", "advocate", "--expires", "400d"],
            &["invite", "r1", "--role", "advocate", "--expires", "7"],
            &["create", "--title", "T", "--cap", "advocate"],
            &["create", "--title", "T", "--cap", "advocate=-1"],
            &["create", "--title", "T", "--cap", "boss=1"],
            &["create", "--title", "T", "--when-full", "queue"],
            &["create"],
            &["update", "r1", "--auto-admit", "yes"],
            &["update", "r1", "--auto-admit"],
            &["revoke", "r1"],
            &["agenda"],
            &["agenda", "r1", "--template", "0"],
            &["agenda", "r1", "--template", "13"],
            &["agenda", "r1", "--template", "three"],
            &["agenda", "r1", "--set"],
            &["agenda", "r1", "--set", "a.json", "--template", "3"],
        ] {
            assert!(room(args).is_err(), "{args:?} parsed");
        }
    }
}
