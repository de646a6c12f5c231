//! The agenda in the room, and the floor that follows it. The room owns an
//! [`Agenda`]; facilitators drive it, its timers run through [`Room::poll_timeout`], and after
//! every change the room works out who may speak and gates the others' audio.
//!
//! Who may speak while the agenda is under way (running or paused):
//! - an organisation's presentation: the facilitators;
//! - a tactic's presentation: its advocate and the facilitators (after time up under the
//!   `mute` policy, the facilitators only);
//! - an open conversation: everyone, or in hand-raise mode the facilitators;
//! - and, in any segment, whom a facilitator gave the floor, until they yield it, it is taken
//!   back, or the segment changes.
//!
//! Before the start and after the end, everyone may. A facilitator's mute wins over the floor.

use super::{ConnId, Output, Reject, Room};
use crate::Now;
use crate::agenda::{Advocate, Agenda, Command, Event, Phase, Plan, SegmentKind};
use crate::roles::{Action, Role, allows};
use crate::wire::{AgendaView, ErrorCode, FloorMode, FloorView, MediaKind, ServerMsg};

impl Room {
    /// Call when a connection sends `agenda_control`.
    pub fn handle_agenda_control(
        &mut self,
        now: Now,
        conn: ConnId,
        action: Command,
        seconds: Option<u32>,
    ) {
        if self.require(conn, Action::RunAgenda).is_none() {
            return;
        }
        match self.agenda.handle_command(now.unix_ms, action, seconds) {
            Ok(events) => self.agenda_changed(now, events),
            Err(refusal) => {
                let code = match action {
                    Command::Extend if self.agenda.is_live() => ErrorCode::BadAgenda,
                    _ => ErrorCode::AgendaState,
                };
                self.reject(conn, Reject::new(code, refusal.0));
            }
        }
    }

    /// Call when a connection sends `agenda_set`.
    pub fn handle_agenda_set(&mut self, now: Now, conn: ConnId, plan: Plan) {
        if self.require(conn, Action::RunAgenda).is_none() {
            return;
        }
        if let Err(reject) = self.set_plan(now, plan) {
            self.reject(conn, reject);
        }
    }

    /// The admin API's edit of the plan.
    pub fn handle_admin_agenda(&mut self, now: Now, plan: Plan) -> Result<(), Reject> {
        self.set_plan(now, plan)
    }

    /// The agenda now, plan, state and record.
    pub fn agenda(&self) -> &Agenda {
        &self.agenda
    }

    fn set_plan(&mut self, now: Now, mut plan: Plan) -> Result<(), Reject> {
        // An advocate named by participant id who joined with an invite is named by the
        // invite: participant ids start again when the room does.
        for tactic in &mut plan.tactics {
            if let Some(Advocate::Participant { id }) = &tactic.advocate
                && let Some(invite) = self.participants.get(id).and_then(|p| p.invite.clone())
            {
                tactic.advocate = Some(Advocate::Invite { id: invite });
            }
        }
        if plan == self.agenda.plan {
            return Ok(());
        }
        let bad = plan.check().is_err();
        self.agenda.set_plan(now.unix_ms, plan).map_err(|r| {
            let code = if bad {
                ErrorCode::BadAgenda
            } else {
                ErrorCode::AgendaState
            };
            Reject::new(code, r.0)
        })?;
        self.agenda_changed(now, Vec::new());
        Ok(())
    }

    /// Call when a connection sends `give_floor`.
    pub fn handle_give_floor(&mut self, now: Now, conn: ConnId, target: &str) {
        let Some(by) = self.require(conn, Action::RunAgenda) else {
            return;
        };
        let Some(p) = self.participants.get(target) else {
            return self.reject(conn, super::moderation::no_such_participant(target));
        };
        if !allows(p.info.role, Action::Publish) {
            let why = format!("a {} does not speak", p.info.role);
            return self.reject(conn, Reject::new(ErrorCode::Forbidden, why));
        }
        let name = p.info.name.clone();
        // The hand that asked for it comes down.
        if self.hands.iter().any(|h| h == target) {
            self.hands.retain(|h| h != target);
            self.broadcast_hands();
        }
        if self.floor_given.iter().any(|g| g == target) {
            return;
        }
        self.audit(now, &by, "give_floor", Some((target, &name)), None);
        self.agenda.note_transition(now.unix_ms, "give_floor");
        self.floor_given.push(target.to_string());
        self.agenda_changed(now, Vec::new());
    }

    /// Call when a connection sends `take_floor`.
    pub fn handle_take_floor(&mut self, now: Now, conn: ConnId, target: &str) {
        let Some(by) = self.require(conn, Action::RunAgenda) else {
            return;
        };
        let Some(p) = self.participants.get(target) else {
            return self.reject(conn, super::moderation::no_such_participant(target));
        };
        if self.floor_given.iter().any(|g| g == target) {
            let name = p.info.name.clone();
            self.audit(now, &by, "take_floor", Some((target, &name)), None);
            self.drop_floor(now, target, "take_floor");
        }
    }

    /// Call when a connection sends `yield_floor`.
    pub fn handle_yield_floor(&mut self, now: Now, conn: ConnId) {
        let Some(me) = self.require_joined(conn) else {
            return;
        };
        self.drop_floor(now, &me, "yield_floor");
    }

    fn drop_floor(&mut self, now: Now, who: &str, what: &str) {
        if self.floor_given.iter().any(|g| g == who) {
            self.agenda.note_transition(now.unix_ms, what);
            self.floor_given.retain(|g| g != who);
            self.agenda_changed(now, Vec::new());
        }
    }

    /// The agenda's timers fell due.
    pub(super) fn agenda_timeout(&mut self, now: Now) {
        let events = self.agenda.handle_timeout(now.unix_ms);
        if !events.is_empty() {
            self.agenda_changed(now, events);
        }
    }

    /// After any change to the agenda or the floor: a new segment clears the floor given,
    /// the gates follow the floor, the store gets the agenda, and everyone the picture.
    pub(super) fn agenda_changed(&mut self, now: Now, events: Vec<Event>) {
        if events
            .iter()
            .any(|e| matches!(e, Event::SegmentStarted | Event::Ended))
        {
            self.floor_given.clear();
        }
        self.refresh_audio_gates();
        self.note_floor_holders();
        self.refresh_recording(None);
        self.outputs
            .push_back(Output::SaveAgenda(Box::new(self.agenda.clone())));
        let agenda = Box::new(self.agenda_view(now));
        if events.is_empty() {
            self.broadcast(
                None,
                ServerMsg::Agenda {
                    agenda,
                    event: None,
                },
            );
        } else {
            for event in events {
                let msg = ServerMsg::Agenda {
                    agenda: agenda.clone(),
                    event: Some(event),
                };
                self.broadcast(None, msg);
            }
        }
    }

    /// Someone joined or left (`except`: the joiner, who had the agenda in `joined`): while
    /// the agenda is under way, the others learn the new speakers, and the record who
    /// presents.
    pub(super) fn presence_changed(&mut self, now: Now, except: Option<&str>) {
        if !self.agenda.is_live() {
            return;
        }
        self.refresh_audio_gates();
        self.note_floor_holders();
        self.outputs
            .push_back(Output::SaveAgenda(Box::new(self.agenda.clone())));
        let agenda = Box::new(self.agenda_view(now));
        self.broadcast(
            except,
            ServerMsg::Agenda {
                agenda,
                event: None,
            },
        );
    }

    /// Put who holds the floor now on the segment's record: presenters and whom the floor
    /// was given, not the facilitators, and nobody for an open floor (everyone holds it).
    pub(super) fn note_floor_holders(&mut self) {
        let open = !self.agenda.is_live() || self.floor_mode() == FloorMode::Open;
        let names: Vec<String> = self
            .floor_holders()
            .into_iter()
            .filter_map(|id| self.participants.get(&id))
            .filter(|p| p.info.role != Role::Facilitator)
            .filter(|p| !open || self.floor_given.contains(&p.info.id))
            .map(|p| p.info.name.clone())
            .collect();
        for name in names {
            self.agenda.note_floor(&name);
        }
    }

    /// Whether `id` may speak now, as far as the floor goes (a mute aside).
    pub(super) fn on_floor(&self, id: &str) -> bool {
        let Some(p) = self.participants.get(id) else {
            return false;
        };
        if !self.agenda.is_live() || p.info.role == Role::Facilitator {
            return true;
        }
        if self.floor_given.iter().any(|g| g == id) {
            return true;
        }
        match self.floor_mode() {
            FloorMode::Open => true,
            FloorMode::Presentation => self.presents(id),
            FloorMode::HandRaise | FloorMode::Closed => false,
        }
    }

    fn floor_mode(&self) -> FloorMode {
        let Some((_, segment)) = self.agenda.current() else {
            return FloorMode::Open;
        };
        match segment.kind {
            SegmentKind::Organisation => FloorMode::Presentation,
            SegmentKind::Tactic if self.agenda.state.floor_closed => FloorMode::Closed,
            SegmentKind::Tactic => FloorMode::Presentation,
            SegmentKind::Conversation if self.agenda.plan.hand_raise => FloorMode::HandRaise,
            SegmentKind::Conversation => FloorMode::Open,
        }
    }

    /// Whether `id` presents the current segment (beyond the facilitators, who always may):
    /// the advocate of the tactic under way, in its tactic segment.
    fn presents(&self, id: &str) -> bool {
        let Some((tactic, segment)) = self.agenda.current() else {
            return false;
        };
        if segment.kind != SegmentKind::Tactic {
            return false;
        }
        let Some(p) = self.participants.get(id) else {
            return false;
        };
        match &tactic.advocate {
            Some(Advocate::Invite { id: invite }) => p.invite.as_deref() == Some(invite.as_str()),
            Some(Advocate::Participant { id: who }) => who == id,
            None => false,
        }
    }

    /// Participant ids who may speak now, in join order (observers never speak).
    fn floor_holders(&self) -> Vec<String> {
        self.order
            .iter()
            .filter(|id| allows(self.participants[*id].info.role, Action::Publish))
            .filter(|id| self.on_floor(id))
            .cloned()
            .collect()
    }

    /// Open or close each publisher's audio so that it is forwarded exactly when they are
    /// on the floor and not muted.
    pub(super) fn refresh_audio_gates(&mut self) {
        let mut changes = Vec::new();
        for id in &self.order {
            let p = &self.participants[id];
            if !allows(p.info.role, Action::Publish) {
                continue;
            }
            let open = p.info.audio_allowed && self.on_floor(id);
            if self.audio_open.get(id) != Some(&open) {
                changes.push((id.clone(), open));
            }
        }
        for (id, open) in changes {
            self.audio_open.insert(id.clone(), open);
            self.outputs.push_back(Output::Gate {
                participant: id,
                kind: MediaKind::Audio,
                open,
            });
        }
    }

    /// The agenda as clients see it, at `now`.
    pub(super) fn agenda_view(&self, now: Now) -> AgendaView {
        let state = &self.agenda.state;
        let mode = self.floor_mode();
        let speakers = self.floor_holders();
        AgendaView {
            plan: self.agenda.plan.clone(),
            phase: state.phase,
            tactic: state.tactic,
            segment: state.segment,
            started_at: state.started_at,
            deadline: state.deadline.filter(|_| state.phase == Phase::Running),
            remaining_ms: self
                .agenda
                .remaining_ms(now.unix_ms)
                .filter(|_| state.phase == Phase::Paused),
            extended_s: state.extended_s,
            time_up: state.time_up,
            overrun: state.overrun,
            floor: FloorView {
                mode: if self.agenda.is_live() {
                    mode
                } else {
                    FloorMode::Open
                },
                speakers,
                given: self.floor_given.clone(),
            },
            server_time: now.unix_ms,
        }
    }
}
