//! The gateways' per-client limits ([`crate::access`]).

use aegis_mix_packet::access::PULL_BATCH;
use aegis_proto::access::{Session, Verdict};

use super::*;
use crate::access::AccessReport;

/// Each client's session at its gateway, and what was refused.
pub(super) struct Access {
    sessions: Vec<Session>,
    pub(super) report: AccessReport,
}

impl Sim<'_> {
    /// Attaches every client to its gateway, if the scenario applies the
    /// gateways' policy.
    pub(super) fn start_access(&mut self) {
        let g = &self.s.gateway;
        if !g.policy {
            return;
        }
        let client_rate = self.s.shaping.client_rate(self.s.clients.rate);
        let send_rate = client_rate * g.rate_slack;
        self.access = Some(Access {
            sessions: (0..self.s.clients.count)
                .map(|_| Session::new(send_rate, Duration::ZERO))
                .collect(),
            report: AccessReport {
                send_rate,
                ..AccessReport::default()
            },
        });
    }

    /// Whether `client`'s gateway drops the packet `id` it just sent (over
    /// the send limit); a dropped packet is released.
    pub(super) fn over_send_limit(&mut self, now: Duration, client: u32, id: u32) -> bool {
        let Some(a) = self.access.as_mut() else {
            return false;
        };
        let Some(session) = a.sessions.get_mut(client as usize) else {
            return false;
        };
        if session.on_send(now) == Verdict::Accept {
            return false;
        }
        a.report.rate_limited += 1;
        self.release(id);
        true
    }

    /// Whether `client`'s gateway answers a pull at `now`.
    pub(super) fn pull_allowed(&mut self, now: Duration, client: usize) -> bool {
        let Some(a) = self.access.as_mut() else {
            return true;
        };
        let allowed = a
            .sessions
            .get_mut(client)
            .is_some_and(|s| s.on_pull(now, PULL_BATCH) == Verdict::Accept);
        if !allowed {
            a.report.pulls_refused += 1;
        }
        allowed
    }

    /// Whether `owner`'s mailbox has room for one more box.
    pub(super) fn mailbox_has_room(&mut self, owner: usize) -> bool {
        let Some(a) = self.access.as_mut() else {
            return true;
        };
        let held = self.mailbox.get(owner).map_or(0, Vec::len);
        if held < self.s.gateway.mailbox_limit {
            return true;
        }
        a.report.mailbox_full += 1;
        false
    }

    /// The report, with the refused share.
    pub(super) fn access_report(&self) -> Option<AccessReport> {
        let a = self.access.as_ref()?;
        let mut r = a.report.clone();
        let b = &self.bw;
        let sent = b.real_sent + b.loop_sent + b.drop_sent + b.ack_sent;
        r.rate_limited_share = r.rate_limited as f64 / sent.max(1) as f64;
        Some(r)
    }
}
