//! Call signalling: the typed messages that set up and end a call (offer,
//! answer, candidates, hang-up) and the small state machine each side
//! keeps. No media flows through the mixnet; the signals carry what a
//! media stack (WebRTC or the like) needs to connect directly, sealed end
//! to end like any message (content kind 2).
//!
//! ```text
//! signal    = tag (1) ‖ call id (16) ‖ rest
//! offer     = 1 ‖ id ‖ description length (2, BE) ‖ description (UTF-8)
//! answer    = 2 ‖ id ‖ description length (2, BE) ‖ description (UTF-8)
//! candidate = 3 ‖ id ‖ candidate length (2, BE) ‖ candidate (UTF-8)
//! hang-up   = 4 ‖ id ‖ reason (1: normal, 2: declined, 3: busy, 4: no answer)
//! ```
//!
//! A signal only moves a call with the contact it was placed with or
//! offered by: someone else who learns a call's id cannot answer or end
//! it. A side already in a call answers a new offer with `busy`; an offer
//! not answered within [`RING_TIMEOUT`] ends with `no answer` on both
//! sides. Every state change is reported once as a [`CallEvent`].

use std::collections::BTreeMap;
use std::time::Duration;

use rand::{CryptoRng, RngExt as _};

use crate::edge::EdgeError;
use crate::envelope::MAX_SIGNAL_LEN;

/// How long an offer rings before both sides give up: a signal crosses
/// the mixnet in seconds, and a recipient's client may pull only every
/// few seconds.
pub const RING_TIMEOUT: Duration = Duration::from_secs(120);

/// Ended calls remembered (so late signals for them are recognised and
/// dropped); the oldest is forgotten first.
pub const ENDED_KEPT: usize = 32;

/// Longest description or candidate, in bytes.
pub const MAX_FIELD_LEN: usize = MAX_SIGNAL_LEN - 1 - CALL_ID_LEN - 2;

const CALL_ID_LEN: usize = 16;

/// A call's id, random, chosen by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallId(pub [u8; CALL_ID_LEN]);

impl CallId {
    /// The id in hex, as the control protocol shows it.
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    /// Parses the hex form.
    pub fn from_hex(text: &str) -> Option<CallId> {
        let bytes = hex::decode(text.trim()).ok()?;
        Some(CallId(bytes.try_into().ok()?))
    }
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangUpReason {
    /// One side hung up.
    Normal,
    /// The callee declined the offer.
    Declined,
    /// The callee was in another call.
    Busy,
    /// The offer rang for [`RING_TIMEOUT`] without an answer.
    NoAnswer,
}

impl HangUpReason {
    fn byte(self) -> u8 {
        match self {
            HangUpReason::Normal => 1,
            HangUpReason::Declined => 2,
            HangUpReason::Busy => 3,
            HangUpReason::NoAnswer => 4,
        }
    }

    fn from_byte(byte: u8) -> Option<HangUpReason> {
        Some(match byte {
            1 => HangUpReason::Normal,
            2 => HangUpReason::Declined,
            3 => HangUpReason::Busy,
            4 => HangUpReason::NoAnswer,
            _ => return None,
        })
    }

    /// A word for people and the control protocol.
    pub fn word(self) -> &'static str {
        match self {
            HangUpReason::Normal => "hung up",
            HangUpReason::Declined => "declined",
            HangUpReason::Busy => "busy",
            HangUpReason::NoAnswer => "no answer",
        }
    }
}

/// One call-signalling message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallSignal {
    /// The caller offers a call with its session description.
    Offer {
        /// The call.
        call: CallId,
        /// The caller's session description (SDP or the like).
        description: String,
    },
    /// The callee accepts with its session description.
    Answer {
        /// The call.
        call: CallId,
        /// The callee's session description.
        description: String,
    },
    /// A connectivity candidate (ICE or the like), from either side.
    Candidate {
        /// The call.
        call: CallId,
        /// The candidate.
        candidate: String,
    },
    /// Either side ends the call (or declines it, or is busy).
    HangUp {
        /// The call.
        call: CallId,
        /// Why.
        reason: HangUpReason,
    },
}

impl CallSignal {
    /// The call it belongs to.
    pub fn call(&self) -> CallId {
        match self {
            CallSignal::Offer { call, .. }
            | CallSignal::Answer { call, .. }
            | CallSignal::Candidate { call, .. }
            | CallSignal::HangUp { call, .. } => *call,
        }
    }

    /// Encodes the signal (at most [`MAX_SIGNAL_LEN`] bytes for fields
    /// of at most [`MAX_FIELD_LEN`]).
    pub fn encode(&self) -> Vec<u8> {
        let (tag, text) = match self {
            CallSignal::Offer { description, .. } => (1, Some(description)),
            CallSignal::Answer { description, .. } => (2, Some(description)),
            CallSignal::Candidate { candidate, .. } => (3, Some(candidate)),
            CallSignal::HangUp { .. } => (4, None),
        };
        let mut out = vec![tag];
        out.extend_from_slice(&self.call().0);
        match (text, self) {
            (Some(text), _) => {
                out.extend_from_slice(&(text.len() as u16).to_be_bytes());
                out.extend_from_slice(text.as_bytes());
            }
            (None, CallSignal::HangUp { reason, .. }) => out.push(reason.byte()),
            (None, _) => {}
        }
        out
    }

    /// Strict decoding: a known tag, a field no longer than
    /// [`MAX_FIELD_LEN`] and exactly as long as it says, valid UTF-8, a
    /// known reason, nothing after.
    pub fn decode(bytes: &[u8]) -> Result<CallSignal, EdgeError> {
        let malformed = EdgeError::Malformed("call signal");
        if bytes.len() < 1 + CALL_ID_LEN || bytes.len() > MAX_SIGNAL_LEN {
            return Err(malformed);
        }
        let (tag, rest) = (bytes[0], &bytes[1..]);
        let (id, rest) = rest.split_at(CALL_ID_LEN);
        let call = CallId(id.try_into().map_err(|_| malformed.clone())?);
        if tag == 4 {
            let reason = match rest {
                [byte] => HangUpReason::from_byte(*byte).ok_or(malformed)?,
                _ => return Err(malformed),
            };
            return Ok(CallSignal::HangUp { call, reason });
        }
        let text = match rest {
            [high, low, text @ ..]
                if usize::from(u16::from_be_bytes([*high, *low])) == text.len() =>
            {
                std::str::from_utf8(text).map_err(|_| malformed.clone())?
            }
            _ => return Err(malformed),
        };
        let text = text.to_owned();
        match tag {
            1 => Ok(CallSignal::Offer {
                call,
                description: text,
            }),
            2 => Ok(CallSignal::Answer {
                call,
                description: text,
            }),
            3 => Ok(CallSignal::Candidate {
                call,
                candidate: text,
            }),
            _ => Err(malformed),
        }
    }
}

/// Where a call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// We offered; waiting for the answer.
    Offering,
    /// They offered; waiting for the user to answer or decline.
    Ringing,
    /// Both descriptions are known: the media stack can connect.
    Connected,
    /// Over.
    Ended(HangUpReason),
}

impl CallState {
    /// A word for people and the control protocol.
    pub fn word(self) -> &'static str {
        match self {
            CallState::Offering => "offering",
            CallState::Ringing => "ringing",
            CallState::Connected => "connected",
            CallState::Ended(_) => "ended",
        }
    }
}

/// What happened to a call, reported once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEventKind {
    /// They offer a call: answer or decline it.
    Ringing {
        /// Their session description.
        description: String,
    },
    /// They answered our offer.
    Connected {
        /// Their session description.
        description: String,
    },
    /// They sent a candidate.
    Candidate {
        /// The candidate.
        candidate: String,
    },
    /// The call ended.
    Ended {
        /// Why.
        reason: HangUpReason,
        /// Whether the other side ended it (else we did, or it timed out).
        by_them: bool,
    },
}

/// A call event for contact `C`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEvent<C> {
    /// The call.
    pub call: CallId,
    /// The other side.
    pub contact: C,
    /// What happened.
    pub kind: CallEventKind,
}

/// Why a call action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No call by that id is going on.
    #[error("no call {0}")]
    Unknown(String),
    /// The call is not in a state that allows it.
    #[error("the call is {0}")]
    WrongState(&'static str),
    /// Another call is going on.
    #[error("already in a call")]
    Busy,
    /// A description or candidate is too long.
    #[error("at most {MAX_FIELD_LEN} bytes")]
    TooLong,
}

#[derive(Debug, Clone)]
struct Call<C> {
    contact: C,
    state: CallState,
    since: Duration,
}

/// Every call of one client: at most one going on, the last
/// [`ENDED_KEPT`] ended ones remembered. Sans-IO: each method returns the
/// signal to send (to the call's contact) and reports events through
/// [`Calls::poll_event`].
#[derive(Debug)]
pub struct Calls<C> {
    calls: BTreeMap<CallId, Call<C>>,
    ended: std::collections::VecDeque<CallId>,
    events: std::collections::VecDeque<CallEvent<C>>,
    ignored: u64,
}

impl<C: Clone + PartialEq> Default for Calls<C> {
    fn default() -> Self {
        Calls {
            calls: BTreeMap::new(),
            ended: std::collections::VecDeque::new(),
            events: std::collections::VecDeque::new(),
            ignored: 0,
        }
    }
}

impl<C: Clone + PartialEq> Calls<C> {
    /// The call going on, if any.
    pub fn active(&self) -> Option<(CallId, CallState)> {
        self.calls
            .iter()
            .find(|(_, c)| !matches!(c.state, CallState::Ended(_)))
            .map(|(id, c)| (*id, c.state))
    }

    /// A call's state and contact.
    pub fn get(&self, call: CallId) -> Option<(CallState, &C)> {
        self.calls.get(&call).map(|c| (c.state, &c.contact))
    }

    /// Signals dropped: for no call, from the wrong contact, or out of
    /// order.
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<CallEvent<C>> {
        self.events.pop_front()
    }

    /// Places a call to `contact`: the offer to send.
    pub fn place<R: CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        contact: C,
        description: String,
        now: Duration,
    ) -> Result<(CallId, CallSignal), CallError> {
        check_len(&description)?;
        if self.active().is_some() {
            return Err(CallError::Busy);
        }
        let call = CallId(rng.random());
        self.calls.insert(
            call,
            Call {
                contact,
                state: CallState::Offering,
                since: now,
            },
        );
        Ok((call, CallSignal::Offer { call, description }))
    }

    /// Answers a ringing call: the answer to send.
    pub fn answer(
        &mut self,
        call: CallId,
        description: String,
        now: Duration,
    ) -> Result<(C, CallSignal), CallError> {
        check_len(&description)?;
        let entry = self.live(call)?;
        if entry.state != CallState::Ringing {
            return Err(CallError::WrongState(entry.state.word()));
        }
        entry.state = CallState::Connected;
        entry.since = now;
        Ok((
            entry.contact.clone(),
            CallSignal::Answer { call, description },
        ))
    }

    /// A candidate of ours for a call going on: the signal to send.
    pub fn candidate(
        &mut self,
        call: CallId,
        candidate: String,
    ) -> Result<(C, CallSignal), CallError> {
        check_len(&candidate)?;
        let entry = self.live(call)?;
        Ok((
            entry.contact.clone(),
            CallSignal::Candidate { call, candidate },
        ))
    }

    /// Hangs up (or declines, if it is ringing): the signal to send.
    pub fn hang_up(&mut self, call: CallId) -> Result<(C, CallSignal), CallError> {
        let entry = self.live(call)?;
        let reason = match entry.state {
            CallState::Ringing => HangUpReason::Declined,
            _ => HangUpReason::Normal,
        };
        let contact = entry.contact.clone();
        self.end(call, reason, false);
        Ok((contact, CallSignal::HangUp { call, reason }))
    }

    /// A signal from `from`; returns a signal to send back, if any (busy).
    pub fn handle(
        &mut self,
        from: C,
        signal: CallSignal,
        now: Duration,
    ) -> Option<(C, CallSignal)> {
        let call = signal.call();
        if let CallSignal::Offer { description, .. } = signal {
            if self.calls.contains_key(&call) {
                self.ignored += 1;
                return None;
            }
            if self.active().is_some() {
                self.ignored += 1;
                return Some((
                    from,
                    CallSignal::HangUp {
                        call,
                        reason: HangUpReason::Busy,
                    },
                ));
            }
            self.calls.insert(
                call,
                Call {
                    contact: from.clone(),
                    state: CallState::Ringing,
                    since: now,
                },
            );
            self.events.push_back(CallEvent {
                call,
                contact: from,
                kind: CallEventKind::Ringing { description },
            });
            return None;
        }
        let Some(entry) = self
            .calls
            .get_mut(&call)
            .filter(|c| c.contact == from && !matches!(c.state, CallState::Ended(_)))
        else {
            self.ignored += 1;
            return None;
        };
        let kind = match signal {
            CallSignal::Answer { description, .. } if entry.state == CallState::Offering => {
                entry.state = CallState::Connected;
                entry.since = now;
                CallEventKind::Connected { description }
            }
            CallSignal::Candidate { candidate, .. } => CallEventKind::Candidate { candidate },
            CallSignal::HangUp { reason, .. } => {
                self.end(call, reason, true);
                return None;
            }
            _ => {
                self.ignored += 1;
                return None;
            }
        };
        self.events.push_back(CallEvent {
            call,
            contact: from,
            kind,
        });
        None
    }

    /// Ends calls that rang for [`RING_TIMEOUT`]: the hang-ups to send.
    pub fn handle_timeout(&mut self, now: Duration) -> Vec<(C, CallSignal)> {
        let expired: Vec<(CallId, C)> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                matches!(c.state, CallState::Offering | CallState::Ringing)
                    && now.saturating_sub(c.since) >= RING_TIMEOUT
            })
            .map(|(id, c)| (*id, c.contact.clone()))
            .collect();
        expired
            .into_iter()
            .map(|(call, contact)| {
                self.end(call, HangUpReason::NoAnswer, false);
                let reason = HangUpReason::NoAnswer;
                (contact, CallSignal::HangUp { call, reason })
            })
            .collect()
    }

    /// When [`Calls::handle_timeout`] has something to do next.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.calls
            .values()
            .filter(|c| matches!(c.state, CallState::Offering | CallState::Ringing))
            .map(|c| c.since + RING_TIMEOUT)
            .min()
    }

    fn live(&mut self, call: CallId) -> Result<&mut Call<C>, CallError> {
        match self.calls.get_mut(&call) {
            Some(c) if !matches!(c.state, CallState::Ended(_)) => Ok(c),
            Some(_) => Err(CallError::WrongState("over")),
            None => Err(CallError::Unknown(call.to_hex())),
        }
    }

    fn end(&mut self, call: CallId, reason: HangUpReason, by_them: bool) {
        let Some(entry) = self.calls.get_mut(&call) else {
            return;
        };
        entry.state = CallState::Ended(reason);
        let contact = entry.contact.clone();
        self.events.push_back(CallEvent {
            call,
            contact,
            kind: CallEventKind::Ended { reason, by_them },
        });
        self.ended.push_back(call);
        while self.ended.len() > ENDED_KEPT {
            if let Some(old) = self.ended.pop_front() {
                self.calls.remove(&old);
            }
        }
    }
}

fn check_len(text: &str) -> Result<(), CallError> {
    if text.len() > MAX_FIELD_LEN {
        return Err(CallError::TooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
