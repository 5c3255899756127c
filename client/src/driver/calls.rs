//! Calls in the driver: the user's call actions become signalling
//! messages, signals that arrive move [`Calls`], and its events reach the
//! application.

use aegis_proto::ContactId;
use tracing::debug;

use super::Driver;
use crate::api::{CallAction, ClientError, Event};
use crate::call::{CallId, CallSignal};
use crate::envelope::Content;
use crate::profile::ContactState;

impl Driver {
    /// Carries out a call action: the signal it makes is queued to the
    /// call's contact. A call that could not be offered ends at once.
    pub(super) fn call_action(&mut self, action: CallAction) -> Result<CallId, ClientError> {
        let now = self.now();
        let (call, contact, signal) = match action {
            CallAction::Place {
                contact,
                description,
            } => {
                let (call, signal) = self.calls.place(&mut self.rng, contact, description, now)?;
                (call, contact, signal)
            }
            CallAction::Answer { call, description } => {
                let (contact, signal) = self.calls.answer(call, description, now)?;
                (call, contact, signal)
            }
            CallAction::Candidate { call, candidate } => {
                let (contact, signal) = self.calls.candidate(call, candidate)?;
                (call, contact, signal)
            }
            CallAction::HangUp { call } => {
                let (contact, signal) = self.calls.hang_up(call)?;
                (call, contact, signal)
            }
        };
        let queued = self.send_signal(contact, &signal);
        if queued.is_err() && matches!(signal, CallSignal::Offer { .. }) {
            let _ = self.calls.hang_up(call);
        }
        self.forward_call_events();
        queued.map(|_| call)
    }

    /// A call signal from `from` (already opened). Only contacts can call:
    /// a request's signals are dropped, as nothing can be sent back to it.
    pub(super) fn handle_call_signal(&mut self, from: ContactId, state: ContactState, body: &[u8]) {
        if state != ContactState::Contact {
            debug!("call signal from a contact request dropped");
            return;
        }
        let signal = match CallSignal::decode(body) {
            Ok(signal) => signal,
            Err(error) => {
                debug!(%error, "malformed call signal dropped");
                return;
            }
        };
        let now = self.now();
        if let Some((to, reply)) = self.calls.handle(from, signal, now) {
            let _ = self.send_signal(to, &reply);
        }
        self.forward_call_events();
    }

    /// Ends calls that rang too long, telling the other side.
    pub(super) fn call_timeouts(&mut self) {
        if self.calls.next_deadline().is_none_or(|d| d > self.now()) {
            return;
        }
        let now = self.now();
        for (to, signal) in self.calls.handle_timeout(now) {
            let _ = self.send_signal(to, &signal);
        }
        self.forward_call_events();
    }

    fn send_signal(&mut self, to: ContactId, signal: &CallSignal) -> Result<(), ClientError> {
        self.queue(to, Content::new(true, signal.encode()))
            .map(drop)
    }

    fn forward_call_events(&mut self) {
        while let Some(event) = self.calls.poll_event() {
            let name = self
                .profile
                .contact(&event.contact)
                .ok()
                .flatten()
                .map(|r| r.name)
                .unwrap_or_else(|| "?".into());
            self.notify(Event::Call {
                call: event.call,
                contact: event.contact,
                name,
                kind: event.kind,
            });
        }
    }
}
