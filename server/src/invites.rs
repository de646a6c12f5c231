//! Invite links. A secret is minted here and only its SHA-256 is stored. The link carries the
//! secret in its fragment (`#invite=`), which browsers never send: it reaches no server log
//! and no Referer. Also here: durations as people write them (`7d`), the default expiries,
//! and minting, which refuses a reserved seat the room cannot hold.

use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};
use signaling::policy::Snapshot;
use signaling::roles::Role;
use signaling::wire::{ErrorCode, Reject};

use crate::ids::random_id;
use crate::store::{InviteRecord, InviteRefusal, Store, StoreError};

/// How long an invite lasts when nobody says.
pub const INVITE_TTL: Duration = Duration::from_secs(7 * DAY);
/// How long the facilitator's link that `room create` makes lasts.
pub const FACILITATOR_TTL: Duration = Duration::from_secs(30 * DAY);
/// The longest an invite may last.
pub const MAX_TTL: Duration = Duration::from_secs(365 * DAY);

const DAY: u64 = 24 * 60 * 60;

/// How often minting a reserved invite tries again when the room changed between its check
/// and its write. Only another change to the same room at that instant makes it retry.
const MINT_ATTEMPTS: usize = 8;

/// A new invite secret: 32 characters of a 57-letter alphabet, about 186 bits.
pub fn new_secret() -> String {
    random_id(32)
}

/// The SHA-256 of a secret, in hex: what the store keeps and looks invites up by.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A room's open link.
pub fn room_url(public_url: &str, room_id: &str) -> String {
    format!("{}/r/{room_id}", public_url.trim_end_matches('/'))
}

/// The link of an invite: the room's link with the secret in its fragment.
pub fn invite_url(public_url: &str, room_id: &str, secret: &str) -> String {
    format!("{}#invite={secret}", room_url(public_url, room_id))
}

/// A refusal as the WebSocket and the invite check send it: its code, and words a
/// participant understands.
pub fn refused(refusal: InviteRefusal) -> Reject {
    let (code, why) = match refusal {
        InviteRefusal::Invalid => (ErrorCode::InviteInvalid, "this invitation is not valid"),
        InviteRefusal::WrongRoom => (
            ErrorCode::InviteWrongRoom,
            "this invitation is for another room",
        ),
        InviteRefusal::Revoked => (ErrorCode::InviteRevoked, "this invitation was revoked"),
        InviteRefusal::Expired => (ErrorCode::InviteExpired, "this invitation has expired"),
        InviteRefusal::UsedUp => (
            ErrorCode::InviteUsedUp,
            "this invitation has been used as often as it may be",
        ),
    };
    Reject::new(code, why)
}

/// A duration as written on the command line: a whole number and one unit, `s`, `m`, `h`
/// or `d` (`90s`, `30m`, `12h`, `7d`), more than nothing and at most [`MAX_TTL`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!("`{text}` is not a duration: write a number and a unit, like 90s, 30m, 12h or 7d")
    };
    let unit = match text.chars().last() {
        Some('s') => 1,
        Some('m') => 60,
        Some('h') => 60 * 60,
        Some('d') => DAY,
        _ => return Err(bad()),
    };
    let number = &text[..text.len() - 1];
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let seconds = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .unwrap_or(u64::MAX);
    check_ttl(Duration::from_secs(seconds))
}

/// Refuse an expiry of nothing or of more than [`MAX_TTL`].
pub fn check_ttl(ttl: Duration) -> Result<Duration, String> {
    if ttl.is_zero() {
        return Err("an invite must last at least a second".into());
    }
    if ttl > MAX_TTL {
        return Err(format!(
            "an invite may last at most {} days",
            MAX_TTL.as_secs() / DAY
        ));
    }
    Ok(ttl)
}

/// Unix ms as `YYYY-MM-DD HH:MM UTC`, for listings (Howard Hinnant's `civil_from_days`).
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (hour, minute) = (of_day / 3600, of_day % 3600 / 60);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

/// Where an invite stands, for listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InviteState {
    /// It admits.
    Live,
    /// Past its expiry.
    Expired,
    /// Its uses are spent.
    UsedUp,
    /// Revoked.
    Revoked,
}

impl InviteState {
    /// The state of `invite` at `now_ms`.
    pub fn of(invite: &InviteRecord, now_ms: i64) -> Self {
        match invite.refusal(&invite.room_id, now_ms) {
            None => InviteState::Live,
            Some(InviteRefusal::Revoked) => InviteState::Revoked,
            Some(InviteRefusal::Expired) => InviteState::Expired,
            Some(_) => InviteState::UsedUp,
        }
    }

    /// As listings print it.
    pub fn as_str(self) -> &'static str {
        match self {
            InviteState::Live => "live",
            InviteState::Expired => "expired",
            InviteState::UsedUp => "used up",
            InviteState::Revoked => "revoked",
        }
    }
}

/// An invite as the CLI and the API list it: the record and its state, never the secret.
#[derive(Debug, Serialize)]
pub struct InviteView<'a> {
    /// The record.
    #[serde(flatten)]
    pub invite: &'a InviteRecord,
    /// Where it stands now.
    pub state: InviteState,
}

impl<'a> InviteView<'a> {
    /// `invite` as it stands at `now_ms`.
    pub fn at(invite: &'a InviteRecord, now_ms: i64) -> Self {
        InviteView {
            invite,
            state: InviteState::of(invite, now_ms),
        }
    }

    /// Each of `invites` as it stands at `now_ms`.
    pub fn all(invites: &'a [InviteRecord], now_ms: i64) -> Vec<Self> {
        invites.iter().map(|i| InviteView::at(i, now_ms)).collect()
    }
}

/// What to mint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteSpec {
    /// The role it gives.
    pub role: Role,
    /// A display name it fixes, checked by `signaling::name`'s rules.
    pub name: Option<String>,
    /// How long it lasts.
    pub ttl: Duration,
    /// Whether it holds a seat; `None` is the role's default
    /// ([`Role::reserves_by_default`]).
    pub reserve: Option<bool>,
    /// How many seatings it allows; `None` is unlimited.
    pub max_uses: Option<u32>,
}

impl InviteSpec {
    /// An invite for `role` with the defaults: no fixed name, [`INVITE_TTL`], the role's
    /// reserve default, unlimited uses.
    pub fn new(role: Role) -> Self {
        InviteSpec {
            role,
            name: None,
            ttl: INVITE_TTL,
            reserve: None,
            max_uses: None,
        }
    }

    /// The record this spec makes for `room_id` at `now_ms`, or why it cannot be made.
    fn record(&self, room_id: &str, now_ms: i64) -> Result<InviteRecord, String> {
        let name = match &self.name {
            Some(raw) => Some(
                signaling::name::display_name(raw)
                    .map_err(|r| r.message)?
                    .to_string(),
            ),
            None => None,
        };
        let ttl = check_ttl(self.ttl)?;
        if self.max_uses == Some(0) {
            return Err("an invite must allow at least one use".into());
        }
        let ttl_ms = i64::try_from(ttl.as_millis()).expect("at most a year of ms");
        Ok(InviteRecord {
            id: random_id(10),
            room_id: room_id.to_string(),
            role: self.role,
            name,
            reserve: self.reserve.unwrap_or(self.role.reserves_by_default()),
            max_uses: self.max_uses,
            uses: 0,
            expires_at: now_ms + ttl_ms,
            created_at: now_ms,
            revoked_at: None,
        })
    }
}

/// A minted invite: the record and its link, which carries the secret. Neither is stored:
/// the link is shown once.
#[derive(Debug, Clone)]
pub struct Minted {
    /// As stored.
    pub invite: InviteRecord,
    /// The link to hand out.
    pub url: String,
}

/// Why minting failed.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// No such room.
    #[error("no room `{0}`")]
    RoomNotFound(String),
    /// A reserved invite the room's seats cannot hold.
    #[error("{0}")]
    NoSeat(String),
    /// A bad name, expiry or number of uses.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether one more reserved seat of `role` fits: the live reserved invites (spent ones
/// too, as they hold their seat until they expire) must leave one of the room's seats, and
/// one of the role's if it has a cap.
pub fn seat_to_reserve(snapshot: &Snapshot, role: Role) -> Result<(), String> {
    let reserved = snapshot.reservations.len();
    let capacity = snapshot.policy.capacity;
    if reserved >= capacity as usize {
        return Err(format!(
            "the room's {capacity} seats are all reserved already"
        ));
    }
    if let Some(cap) = snapshot.policy.caps.of(role) {
        let of_role = snapshot
            .reservations
            .iter()
            .filter(|r| r.role == role)
            .count();
        if of_role >= cap as usize {
            return Err(format!("the {cap} {role} seats are all reserved already"));
        }
    }
    Ok(())
}

/// Mint an invite to `room_id` at `now_ms` and store it (its hash), with its link under
/// `public_url`. A reserved one is checked against the room's seats and written only if
/// the room did not change since the check.
pub async fn mint(
    store: &dyn Store,
    public_url: &str,
    room_id: &str,
    spec: &InviteSpec,
    now_ms: i64,
) -> Result<Minted, MintError> {
    let invite = spec.record(room_id, now_ms).map_err(MintError::Invalid)?;
    let secret = new_secret();
    let hash = secret_hash(&secret);
    let no_room = || MintError::RoomNotFound(room_id.to_string());
    let mut attempts = 0;
    loop {
        let snapshot = store
            .room_snapshot(room_id, now_ms)
            .await?
            .ok_or_else(no_room)?;
        let rev = if invite.reserve {
            seat_to_reserve(&snapshot, invite.role).map_err(MintError::NoSeat)?;
            Some(snapshot.rev)
        } else {
            None
        };
        if store.create_invite_at(&invite, &hash, rev).await? {
            break;
        }
        attempts += 1;
        if attempts == MINT_ATTEMPTS {
            return Err(MintError::Store(StoreError::Conflict(format!(
                "room `{room_id}` changed {MINT_ATTEMPTS} times while an invite was minted"
            ))));
        }
    }
    Ok(Minted {
        url: invite_url(public_url, room_id, &secret),
        invite,
    })
}

#[cfg(test)]
mod tests {
    use signaling::policy::{Reservation, RoomPolicy};

    use super::*;

    #[test]
    fn durations_parse_in_four_units() {
        let secs = |t: &str| parse_duration(t).map(|d| d.as_secs());
        assert_eq!(secs("90s"), Ok(90));
        assert_eq!(secs("30m"), Ok(1_800));
        assert_eq!(secs("12h"), Ok(43_200));
        assert_eq!(secs("7d"), Ok(604_800));
        assert_eq!(secs("365d"), Ok(365 * DAY));
        for bad in ["", "7", "d", "7w", "-1d", "1.5h", " 7d", "7 d", "7D", "７d"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("not a duration"), "{bad:?}: {err}");
        }
        for long in [
            "366d",
            "8761h",
            "99999999999999999999d",
            "18446744073709551615s",
        ] {
            let err = parse_duration(long).unwrap_err();
            assert!(err.contains("at most 365 days"), "{long:?}: {err}");
        }
        assert!(
            parse_duration("0s")
                .unwrap_err()
                .contains("at least a second")
        );
    }

    #[test]
    fn the_hash_is_sha256_hex_and_the_link_keeps_the_secret_in_the_fragment() {
        assert_eq!(
            secret_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let secret = new_secret();
        assert_eq!(secret.len(), 32);
        assert_ne!(secret, new_secret());
        assert_eq!(
            invite_url("https://rt.example/", "room1", "s3cret"),
            "https://rt.example/r/room1#invite=s3cret"
        );
        assert_eq!(room_url("http://h:1", "r"), "http://h:1/r/r");
    }

    #[test]
    fn times_print_as_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_700_000_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00 UTC");
        assert_eq!(utc(4_102_444_799_999), "2099-12-31 23:59 UTC");
        assert_eq!(utc(-1), "1969-12-31 23:59 UTC");
    }

    #[test]
    fn refusals_map_to_their_codes() {
        let codes = [
            (InviteRefusal::Invalid, "invite_invalid"),
            (InviteRefusal::WrongRoom, "invite_wrong_room"),
            (InviteRefusal::Revoked, "invite_revoked"),
            (InviteRefusal::Expired, "invite_expired"),
            (InviteRefusal::UsedUp, "invite_used_up"),
        ];
        for (refusal, code) in codes {
            let reject = refused(refusal);
            assert_eq!(reject.code.as_str(), code);
            assert!(reject.message.starts_with("this invitation "), "{reject:?}");
        }
    }

    fn snapshot(capacity: u32, reserved: &[Role]) -> Snapshot {
        Snapshot {
            rev: 3,
            policy: RoomPolicy::new(capacity),
            reservations: reserved
                .iter()
                .enumerate()
                .map(|(i, role)| Reservation {
                    invite: format!("i{i}"),
                    role: *role,
                    expires_at: 10,
                })
                .collect(),
        }
    }

    #[test]
    fn a_reserved_seat_must_fit_the_capacity_and_the_role_cap() {
        use Role::*;
        assert_eq!(
            seat_to_reserve(&snapshot(3, &[Advocate, Advocate]), Advocate),
            Ok(())
        );
        let full = seat_to_reserve(&snapshot(2, &[Advocate, Facilitator]), Observer);
        assert!(full.unwrap_err().contains("2 seats are all reserved"));
        let mut capped = snapshot(10, &[Advocate, Advocate, Facilitator]);
        capped.policy.caps.set(Advocate, Some(2));
        let err = seat_to_reserve(&capped, Advocate).unwrap_err();
        assert!(err.contains("2 advocate seats are all reserved"), "{err}");
        // The cap is the role's own: other roles still fit.
        assert_eq!(seat_to_reserve(&capped, Facilitator), Ok(()));
        capped.policy.caps.set(Observer, Some(0));
        assert!(seat_to_reserve(&capped, Observer).is_err());
    }

    #[test]
    fn a_spec_becomes_a_record_with_the_role_defaults() {
        let now = 1_000_000;
        let advocate = InviteSpec::new(Role::Advocate).record("r", now).unwrap();
        assert!(advocate.reserve, "advocates reserve by default");
        assert_eq!(advocate.expires_at, now + 7 * 86_400_000);
        assert_eq!((advocate.uses, advocate.max_uses), (0, None));
        let observer = InviteSpec::new(Role::Observer).record("r", now).unwrap();
        assert!(!observer.reserve);
        let told = InviteSpec {
            reserve: Some(false),
            name: Some("  Zoë \u{200B}".into()),
            max_uses: Some(2),
            ttl: Duration::from_secs(90),
            ..InviteSpec::new(Role::Facilitator)
        };
        let record = told.record("r", now).unwrap();
        assert_eq!(
            (record.reserve, record.name.as_deref(), record.max_uses),
            (false, Some("Zoë"), Some(2))
        );
        assert_eq!(record.expires_at, now + 90_000);
        assert_ne!(record.id, advocate.id);
        for bad in [
            InviteSpec {
                name: Some("\u{202E}evil".into()),
                ..InviteSpec::new(Role::Participant)
            },
            InviteSpec {
                name: Some("   ".into()),
                ..InviteSpec::new(Role::Participant)
            },
            InviteSpec {
                max_uses: Some(0),
                ..InviteSpec::new(Role::Participant)
            },
            InviteSpec {
                ttl: MAX_TTL + Duration::from_secs(1),
                ..InviteSpec::new(Role::Participant)
            },
        ] {
            assert!(bad.record("r", now).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn states_follow_the_refusal_order() {
        let live = InviteSpec {
            max_uses: Some(1),
            ..InviteSpec::new(Role::Participant)
        }
        .record("r", 0)
        .unwrap();
        let at = |now: i64, f: &dyn Fn(&mut InviteRecord)| {
            let mut invite = live.clone();
            f(&mut invite);
            InviteState::of(&invite, now)
        };
        let week = 7 * 86_400_000;
        assert_eq!(at(1, &|_| {}), InviteState::Live);
        assert_eq!(at(week, &|_| {}), InviteState::Expired);
        assert_eq!(at(1, &|i| i.uses = 1), InviteState::UsedUp);
        assert_eq!(at(week, &|i| i.uses = 1), InviteState::Expired);
        assert_eq!(at(week, &|i| i.revoked_at = Some(5)), InviteState::Revoked);
        assert_eq!(InviteState::UsedUp.as_str(), "used up");
        assert_eq!(
            serde_json::to_value(InviteState::UsedUp).unwrap(),
            serde_json::json!("used_up")
        );
    }
}
