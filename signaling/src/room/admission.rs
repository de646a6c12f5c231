//! Seats and the waiting room: whether a join finds a seat, the ordered queue of those who
//! did not, and a facilitator's admit and decline.
//!
//! A room's capacity counts seated participants and the free reserved seats: a seat held for
//! a live reserved invite whose holder is not seated. Nobody else takes it. A reserved invite
//! holds its seat until it expires or is revoked, even once its uses are spent. Role caps
//! count the same way, per role.

use super::{Output, Reject, Room, Waiter};
use crate::Now;
use crate::policy::Ticket;
use crate::roles::{Action, Role};
use crate::wire::{ErrorCode, ServerMsg, WaiterInfo};

impl Room {
    /// Whether `ticket` finds a seat now. The lock is the caller's to check.
    pub(super) fn seat_for(&self, now: Now, ticket: &Ticket) -> Result<(), Reject> {
        let policy = &self.config.snapshot.policy;
        let held = |invite: &str| {
            self.participants
                .values()
                .any(|p| p.invite.as_deref() == Some(invite))
        };
        let live = |invite: &str, expires_at: i64| {
            expires_at > now.unix_ms && !self.barred.contains(invite)
        };
        let seated_of = |role: Role| {
            self.participants
                .values()
                .filter(|p| p.info.role == role)
                .count()
        };
        let full = || {
            Reject::new(
                ErrorCode::RoomFull,
                format!("the room is full ({} seats)", policy.capacity),
            )
        };
        let role_full = |cap: u32| {
            Reject::new(
                ErrorCode::RoleFull,
                format!("the {cap} seats for a {} are taken", ticket.role),
            )
        };
        let capacity = policy.capacity as usize;
        let cap = policy.caps.of(ticket.role);
        // The holder of a free reserved seat takes it.
        if self.holds_free_reservation(now, ticket) {
            // Always true unless the capacity or cap was lowered below the reservations.
            if self.order.len() >= capacity {
                return Err(full());
            }
            if let Some(cap) = cap
                && seated_of(ticket.role) >= cap as usize
            {
                return Err(role_full(cap));
            }
            return Ok(());
        }
        let free: Vec<Role> = self
            .config
            .snapshot
            .reservations
            .iter()
            .filter(|r| live(&r.invite, r.expires_at) && !held(&r.invite))
            .map(|r| r.role)
            .collect();
        if self.order.len() + free.len() >= capacity {
            return Err(full());
        }
        if let Some(cap) = cap {
            let free_of_role = free.iter().filter(|r| **r == ticket.role).count();
            if seated_of(ticket.role) + free_of_role >= cap as usize {
                return Err(role_full(cap));
            }
        }
        Ok(())
    }

    /// Whether a join may be seated while others wait: a facilitator, or the holder of a free
    /// reserved seat (nobody in the queue could take that seat).
    pub(super) fn may_pass_the_queue(&self, now: Now, ticket: &Ticket) -> bool {
        ticket.role == Role::Facilitator || self.holds_free_reservation(now, ticket)
    }

    /// Whether `ticket`'s invite reserves a seat that is free now.
    fn holds_free_reservation(&self, now: Now, ticket: &Ticket) -> bool {
        let Some(invite) = ticket.invite.as_deref() else {
            return false;
        };
        let held = self
            .participants
            .values()
            .any(|p| p.invite.as_deref() == Some(invite));
        !held
            && !self.barred.contains(invite)
            && self
                .config
                .snapshot
                .reservations
                .iter()
                .any(|r| r.invite == invite && r.expires_at > now.unix_ms)
    }

    /// When a free reserved seat next expires (Unix ms), if that could seat someone waiting
    /// by auto-admit.
    pub(super) fn next_seat_freed(&self, now: Now) -> Option<i64> {
        if self.waiting.is_empty() || !self.config.snapshot.policy.auto_admit || self.locked {
            return None;
        }
        self.config
            .snapshot
            .reservations
            .iter()
            .filter(|r| r.expires_at > now.unix_ms && !self.barred.contains(&r.invite))
            .filter(|r| {
                !self
                    .participants
                    .values()
                    .any(|p| p.invite.as_deref() == Some(r.invite.as_str()))
            })
            .map(|r| r.expires_at)
            .min()
    }

    /// Put `conn` at the end of the waiting room and tell it, and the facilitators.
    pub(super) fn enqueue(
        &mut self,
        now: Now,
        conn: super::ConnId,
        name: String,
        ticket: Ticket,
        consent: bool,
    ) {
        let info = WaiterInfo {
            id: format!("w{}", self.next_waiter),
            name,
            role: ticket.role,
            since: now.unix_ms,
        };
        self.next_waiter += 1;
        self.waiting.push_back(Waiter {
            conn,
            info,
            ticket,
            consent,
        });
        let position = self.waiting.len() as u32;
        self.send(conn, ServerMsg::Waiting { position });
        self.queue_changed();
    }

    /// The queue changed at `from` (someone left it, or joined its end): everyone from
    /// there on learns their new position, and the facilitators the new queue.
    pub(super) fn queue_moved(&mut self, from: usize) {
        let moved: Vec<(super::ConnId, u32)> = self
            .waiting
            .iter()
            .enumerate()
            .skip(from)
            .map(|(i, w)| (w.conn, i as u32 + 1))
            .collect();
        for (conn, position) in moved {
            self.send(conn, ServerMsg::Waiting { position });
        }
        self.queue_changed();
    }

    fn queue_changed(&mut self) {
        let waiting = self.waiter_infos();
        self.tell_facilitators(ServerMsg::Queue { waiting });
    }

    /// The waiting room as facilitators see it, first first.
    pub(super) fn waiter_infos(&self) -> Vec<WaiterInfo> {
        self.waiting.iter().map(|w| w.info.clone()).collect()
    }

    /// With auto-admit on and the room unlocked, seat whoever in the queue fits, first
    /// first. Someone whose role's seats are taken does not hold up those behind.
    pub(super) fn auto_admit(&mut self, now: Now) {
        if !self.config.snapshot.policy.auto_admit || self.locked {
            return;
        }
        let mut first_moved = None;
        while let Some(at) = self
            .waiting
            .iter()
            .position(|w| self.seat_for(now, &w.ticket).is_ok())
        {
            let w = self.waiting.remove(at).expect("found above");
            self.seat(now, w.conn, w.info.name, w.ticket, w.consent);
            first_moved = Some(first_moved.map_or(at, |f: usize| f.min(at)));
        }
        if let Some(from) = first_moved {
            self.queue_moved(from);
        }
    }

    /// Call when a connection sends `admit`: a facilitator seats someone from the waiting
    /// room, locked or not, if a seat is free.
    pub fn handle_admit(&mut self, now: Now, conn: super::ConnId, waiter: &str) {
        let Some(by) = self.require(conn, Action::Admit) else {
            return;
        };
        let Some(at) = self.waiting.iter().position(|w| w.info.id == waiter) else {
            return self.reject(conn, no_such_waiter(waiter));
        };
        if let Err(full) = self.seat_for(now, &self.waiting[at].ticket) {
            return self.reject(conn, full);
        }
        let w = self.waiting.remove(at).expect("found above");
        self.audit(now, &by, "admit", Some((&w.info.id, &w.info.name)), None);
        self.seat(now, w.conn, w.info.name, w.ticket, w.consent);
        self.queue_moved(at);
    }

    /// Call when a connection sends `decline`: a facilitator turns someone in the waiting
    /// room away. They are told, and their connection closes.
    pub fn handle_decline(&mut self, now: Now, conn: super::ConnId, waiter: &str) {
        let Some(by) = self.require(conn, Action::Admit) else {
            return;
        };
        let Some(at) = self.waiting.iter().position(|w| w.info.id == waiter) else {
            return self.reject(conn, no_such_waiter(waiter));
        };
        let w = self.waiting.remove(at).expect("found above");
        self.audit(now, &by, "decline", Some((&w.info.id, &w.info.name)), None);
        self.send(w.conn, ServerMsg::Declined {});
        self.outputs.push_back(Output::Release { conn: w.conn });
        self.queue_moved(at);
    }
}

fn no_such_waiter(waiter: &str) -> Reject {
    Reject::new(
        ErrorCode::WaiterNotFound,
        format!(
            "nobody waits as `{}`; they may have left or been admitted",
            crate::wire::quote(waiter)
        ),
    )
}
