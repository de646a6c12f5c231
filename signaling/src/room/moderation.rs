//! Moderation: facilitators mute, stop cameras, remove and lock; everyone raises and lowers
//! their own hand, and facilitators lower anyone's. Each facilitator action comes out as an
//! [`Output::Audit`] entry for the room's audit log.

use serde::Serialize;

use super::{ConnId, Output, Reject, Room};
use crate::Now;
use crate::roles::{Action, allows};
use crate::wire::{ErrorCode, LeaveReason, MediaKind, ServerMsg};

/// The name the admin token acts under, in messages and the audit log.
pub const ADMIN: &str = "admin";
/// The actor of what the server did of itself (a recording that ended with its room).
pub const SERVER: &str = "server";

/// One moderation action, for the room's audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Unix ms.
    pub ts: i64,
    /// Who acted: a participant id, `admin`, or `server`.
    pub actor: String,
    /// Their display name then (`admin` for the admin token).
    pub actor_name: String,
    /// What: `mute`, `unmute`, `stop_camera`, `allow_camera`, `remove`, `lock`, `unlock`,
    /// `admit`, `decline`, `lower_hand`, `record_start`, `record_stop`, `give_floor`,
    /// `take_floor`.
    pub action: String,
    /// Whom: a participant or waiting id, if the action has a target.
    pub target: Option<String>,
    /// Their display name then.
    pub target_name: Option<String>,
    /// More, such as `barred`.
    pub detail: Option<String>,
}

impl Room {
    /// Call when a connection sends `mute`: a facilitator stops or allows the forwarding of
    /// someone's audio or video.
    pub fn handle_mute(
        &mut self,
        now: Now,
        conn: ConnId,
        target: &str,
        kind: MediaKind,
        muted: bool,
    ) {
        let Some(by) = self.require(conn, Action::Mute) else {
            return;
        };
        if let Err(reject) = self.set_allowed(now, &by, target, kind, !muted) {
            self.reject(conn, reject);
        }
    }

    /// The admin API's mute: as a facilitator's, under the name `admin`.
    pub fn handle_admin_mute(
        &mut self,
        now: Now,
        target: &str,
        kind: MediaKind,
        muted: bool,
    ) -> Result<(), Reject> {
        self.set_allowed(now, ADMIN, target, kind, !muted)
    }

    fn set_allowed(
        &mut self,
        now: Now,
        by: &str,
        target: &str,
        kind: MediaKind,
        allowed: bool,
    ) -> Result<(), Reject> {
        let p = self
            .participants
            .get_mut(target)
            .ok_or_else(|| no_such_participant(target))?;
        if allowed && !allows(p.info.role, Action::Publish) {
            let why = format!("a {} does not publish media", p.info.role);
            return Err(Reject::new(ErrorCode::Forbidden, why));
        }
        let flag = match kind {
            MediaKind::Audio => &mut p.info.audio_allowed,
            MediaKind::Video => &mut p.info.video_allowed,
        };
        if *flag == allowed {
            return Ok(());
        }
        *flag = allowed;
        let (conn, info) = (p.conn, p.info.clone());
        if let Some(invite) = &p.invite {
            let flags = (info.audio_allowed, info.video_allowed);
            self.moderated.insert(invite.clone(), flags);
        }
        match kind {
            // Audio also follows the floor.
            MediaKind::Audio => self.refresh_audio_gates(),
            MediaKind::Video => self.outputs.push_back(Output::Gate {
                participant: target.to_string(),
                kind,
                open: allowed,
            }),
        }
        let action = match (kind, allowed) {
            (MediaKind::Audio, false) => "mute",
            (MediaKind::Audio, true) => "unmute",
            (MediaKind::Video, false) => "stop_camera",
            (MediaKind::Video, true) => "allow_camera",
        };
        self.audit(now, by, action, Some((target, &info.name)), None);
        self.send(
            conn,
            ServerMsg::Moderated {
                kind,
                allowed,
                by: by.to_string(),
            },
        );
        self.broadcast(None, ServerMsg::ParticipantUpdated { participant: info });
        Ok(())
    }

    /// Call when a connection sends `remove`: a facilitator removes someone, and with `bar`
    /// revokes the invite they came with.
    pub fn handle_remove(&mut self, now: Now, conn: ConnId, target: &str, bar: bool) {
        let Some(by) = self.require(conn, Action::Remove) else {
            return;
        };
        let Some(p) = self.participants.get(target) else {
            return self.reject(conn, no_such_participant(target));
        };
        if target == by {
            let why = "you cannot remove yourself; send `leave`";
            return self.reject(conn, Reject::new(ErrorCode::Forbidden, why));
        }
        let (t_conn, name, invite) = (p.conn, p.info.name.clone(), p.invite.clone());
        if bar {
            let Some(invite) = invite else {
                let why = format!("{name} joined through the open link: no invite to bar");
                return self.reject(conn, Reject::new(ErrorCode::NotBarrable, why));
            };
            self.barred.insert(invite.clone());
            self.outputs.push_back(Output::RevokeInvite { invite });
        }
        let detail = bar.then(|| "barred".to_string());
        self.audit(now, &by, "remove", Some((target, &name)), detail);
        self.send(
            t_conn,
            ServerMsg::Removed {
                by: by.clone(),
                barred: bar,
            },
        );
        self.unseat(target);
        self.outputs.push_back(Output::Release { conn: t_conn });
        self.broadcast(
            None,
            ServerMsg::ParticipantLeft {
                id: target.to_string(),
                reason: LeaveReason::Removed,
            },
        );
        self.presence_changed(now, None);
        self.auto_admit(now);
    }

    /// Call when a connection sends `lock`. A locked room seats no new joins but
    /// facilitators'; the others wait (or are refused, without a waiting room).
    pub fn handle_lock(&mut self, now: Now, conn: ConnId, locked: bool) {
        let Some(by) = self.require(conn, Action::Lock) else {
            return;
        };
        if self.locked == locked {
            return;
        }
        self.locked = locked;
        self.audit(now, &by, if locked { "lock" } else { "unlock" }, None, None);
        self.broadcast(None, ServerMsg::RoomLocked { locked, by });
        self.auto_admit(now);
    }

    /// Call when a connection sends `raise_hand`.
    pub fn handle_raise_hand(&mut self, _now: Now, conn: ConnId) {
        let Some(id) = self.require(conn, Action::RaiseHand) else {
            return;
        };
        if !self.hands.contains(&id) {
            self.hands.push(id);
            self.broadcast_hands();
        }
    }

    /// Call when a connection sends `lower_hand`: its own hand, or (facilitators) anyone's.
    pub fn handle_lower_hand(&mut self, now: Now, conn: ConnId, participant: Option<&str>) {
        let Some(me) = self.require_joined(conn) else {
            return;
        };
        let whose = participant.unwrap_or(&me).to_string();
        if whose != me {
            if self.require(conn, Action::LowerAnyHand).is_none() {
                return;
            }
            let Some(p) = self.participants.get(&whose) else {
                return self.reject(conn, no_such_participant(&whose));
            };
            if self.hands.contains(&whose) {
                let name = p.info.name.clone();
                self.audit(now, &me, "lower_hand", Some((&whose, &name)), None);
            }
        }
        if self.hands.contains(&whose) {
            self.hands.retain(|h| *h != whose);
            self.broadcast_hands();
        }
    }

    pub(super) fn broadcast_hands(&mut self) {
        let queue = self.hands.clone();
        self.broadcast(None, ServerMsg::Hands { queue });
    }

    /// Write an audit entry for an action by `by` (a participant id or [`ADMIN`]).
    pub(super) fn audit(
        &mut self,
        now: Now,
        by: &str,
        action: &str,
        target: Option<(&str, &str)>,
        detail: Option<String>,
    ) {
        let actor_name = self
            .participants
            .get(by)
            .map_or_else(|| by.to_string(), |p| p.info.name.clone());
        self.outputs.push_back(Output::Audit(AuditEntry {
            ts: now.unix_ms,
            actor: by.to_string(),
            actor_name,
            action: action.to_string(),
            target: target.map(|(id, _)| id.to_string()),
            target_name: target.map(|(_, name)| name.to_string()),
            detail,
        }));
    }
}

pub(super) fn no_such_participant(id: &str) -> Reject {
    Reject::new(
        ErrorCode::ParticipantNotFound,
        format!("no participant `{}` in this room", crate::wire::quote(id)),
    )
}
