//! The control protocol: how programs drive a client through `aegis serve`
//! (standard input and output) or a running `aegis daemon` (a local socket
//! only its owner can open). One JSON object per line each way: a
//! [`Request`] in, [`Reply`] objects out, tagged by `"event"`.
//!
//! Requests that only read or change the profile (contacts, safety
//! numbers, history) are answered by [`answer`], the same code whether the
//! profile is open in this process or owned by a running client.

use std::path::{Path, PathBuf};

use aegis_proto::LocalId;
use serde::{Deserialize, Serialize};

use crate::api::{Client, Event, NetworkStats};
use crate::profile::{Profile, thread_contact};

mod online;
mod views;
use online::{call_request, progress, save_file, send_file};
pub use views::{ContactView, FileView, MessageView, status_word};
use views::{call_reply, state_word, text_of, views};

/// A request, one JSON object per line. Externally tagged:
/// `{"send":{"to":"bob","text":"hi"}}`, `"stats"`, `"contacts"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Queue a message to a contact by name (answered with `queued` at
    /// once; `status` events follow).
    Send {
        /// The contact's name.
        to: String,
        /// The message.
        text: String,
        /// Write anonymously: sealed with no identity of ours, carrying
        /// reply blocks; they see it as from `anonymous-…`.
        #[serde(default)]
        anonymous: bool,
    },
    /// Answer an anonymous message of the history over its reply blocks.
    Reply {
        /// The anonymous message's sequence number.
        seq: u64,
        /// The answer.
        text: String,
    },
    /// Queue a file to a contact by name: the client reads it from `path`
    /// (answered with `queued`; `status` events follow, `progress` tells
    /// how far it has come).
    SendFile {
        /// The contact's name.
        to: String,
        /// The file to send (an absolute path).
        path: PathBuf,
        /// The name to send it under (the file's own name if absent).
        #[serde(default)]
        name: Option<String>,
        /// Its media type (guessed from the name's extension if absent).
        #[serde(default)]
        media_type: Option<String>,
    },
    /// How far a queued message has come.
    Progress {
        /// Its id (from `queued`).
        id: u64,
    },
    /// Write a received (or sent) file from the history to `path` (a
    /// folder: under the file's name there); never overwrites.
    Save {
        /// The message's sequence number.
        seq: u64,
        /// Where to write it (an absolute path).
        path: PathBuf,
    },
    /// Call a contact (answered with a `call` reply in state `offering`;
    /// `call` events follow).
    Call {
        /// The contact's name.
        to: String,
        /// Our session description (SDP or the like).
        #[serde(default)]
        description: String,
    },
    /// Answer a ringing call.
    AnswerCall {
        /// The call's id (hex, from its `ringing` event).
        id: String,
        /// Our session description.
        #[serde(default)]
        description: String,
    },
    /// Send a connectivity candidate for a call going on.
    Candidate {
        /// The call's id.
        id: String,
        /// The candidate.
        candidate: String,
    },
    /// Hang up a call, or decline a ringing one.
    HangUp {
        /// The call's id.
        id: String,
    },
    /// The client's traffic figures.
    Stats,
    /// Every contact, request and blocked contact.
    Contacts,
    /// The profile's own contact card.
    Card,
    /// Add a contact from their card.
    AddContact {
        /// A name for them.
        name: String,
        /// Their card.
        card: String,
    },
    /// Rename a contact.
    Rename {
        /// The current name.
        name: String,
        /// The new one.
        new_name: String,
    },
    /// Accept a contact request.
    Accept {
        /// The request's name.
        name: String,
        /// A name to give them.
        #[serde(default)]
        new_name: Option<String>,
    },
    /// Block a contact or request.
    Block {
        /// Their name.
        name: String,
    },
    /// Remove a contact and its sessions.
    Remove {
        /// Their name.
        name: String,
    },
    /// The safety number with a contact.
    Safety {
        /// Their name.
        name: String,
    },
    /// Mark a contact verified; `digits`, if given, must be the safety
    /// number.
    Verify {
        /// Their name.
        name: String,
        /// The number as read out or scanned.
        #[serde(default)]
        digits: Option<String>,
    },
    /// The history with one contact, or all of it.
    History {
        /// The contact's name; every message if absent.
        #[serde(default)]
        with: Option<String>,
    },
    /// Delete one message from the history.
    Delete {
        /// Its sequence number.
        seq: u64,
    },
    /// Delete the whole history with a contact.
    DeleteHistory {
        /// The contact's name.
        with: String,
    },
    /// Keep this connection open and send every event of the client
    /// (messages, statuses, requests) as it happens.
    Follow,
}

/// What the client says: answers to requests and events, one JSON object
/// per line, tagged by `"event"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Reply {
    /// Attached to the gateway.
    Connected {
        /// The consensus epoch.
        epoch: u64,
    },
    /// A message was queued.
    Queued {
        /// Its id.
        id: u64,
        /// To whom.
        to: String,
    },
    /// A queued message changed status.
    Status {
        /// Its id.
        id: u64,
        /// `queued`, `sent`, `delivered` or `failed`.
        status: String,
    },
    /// A message arrived.
    Message {
        /// From whom (their name).
        from: String,
        /// The text (invalid UTF-8 replaced).
        text: String,
        /// From a contact request.
        #[serde(default)]
        request: bool,
        /// Its place in the history.
        #[serde(default)]
        seq: u64,
        /// For a file: its name, type and size (`aegis save` writes it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<FileView>,
        /// Of an anonymous thread (hex): from an anonymous writer if
        /// `anonymous`, else a contact's reply to our anonymous message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thread: Option<String>,
        /// From someone who wrote anonymously (answer with `reply`).
        #[serde(default)]
        anonymous: bool,
    },
    /// How far a message in the outbox has come.
    Progress {
        /// Its id.
        id: u64,
        /// `queued` or `sent`.
        status: String,
        /// Its fragments.
        fragments: usize,
        /// Fragments sent at least once.
        sent: usize,
        /// Fragments acknowledged.
        acknowledged: usize,
    },
    /// A file was written.
    Saved {
        /// Where.
        path: PathBuf,
        /// Its length in bytes.
        bytes: usize,
    },
    /// A call changed: `offering` (ours, placed), `ringing` (theirs,
    /// offered), `connected`, `candidate` (one of theirs arrived),
    /// `ended`.
    Call {
        /// The call's id (hex).
        id: String,
        /// The other side's name.
        with: String,
        /// Where the call stands, or what arrived.
        state: String,
        /// Their session description (`ringing`, `connected`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// Their candidate (`candidate`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        candidate: Option<String>,
        /// Why it ended (`ended`): `hung up`, `declined`, `busy`, `no answer`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Whether they ended it (`ended`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by_them: Option<bool>,
    },
    /// A stranger wrote: a contact request.
    ContactRequest {
        /// The name given to them.
        name: String,
    },
    /// Events were dropped because the reader was too slow.
    Lagged {
        /// How many.
        missed: u64,
    },
    /// Traffic figures.
    Stats {
        /// Real packets sent.
        real_sent: u64,
        /// Loop cover sent.
        loops_sent: u64,
        /// Drop cover sent.
        drops_sent: u64,
        /// Loops back.
        loops_returned: u64,
        /// Median loop round trip, ms.
        loop_rtt_p50_ms: Option<f64>,
        /// Messages from blocked contacts dropped.
        #[serde(default)]
        blocked_dropped: u64,
        /// Events the reader missed.
        #[serde(default)]
        events_missed: u64,
        /// Repeated deliveries not acknowledged again.
        #[serde(default)]
        acks_withheld: u64,
        /// Frames released later than the hold after their slot.
        #[serde(default)]
        release_overruns: u64,
    },
    /// The contacts.
    Contacts {
        /// Each contact.
        contacts: Vec<ContactView>,
    },
    /// The own card.
    Card {
        /// `aegis1…`.
        card: String,
    },
    /// A safety number.
    Safety {
        /// The contact.
        name: String,
        /// The 60 digits.
        digits: String,
        /// Whether the contact is marked verified.
        verified: bool,
    },
    /// History entries.
    History {
        /// Oldest first.
        messages: Vec<MessageView>,
    },
    /// Messages deleted.
    Deleted {
        /// How many.
        count: usize,
    },
    /// Done.
    Ok {
        /// What was done.
        done: String,
    },
    /// The request failed.
    Error {
        /// Why.
        message: String,
    },
}

pub(super) fn failed(error: impl std::fmt::Display) -> Reply {
    Reply::Error {
        message: error.to_string(),
    }
}

pub(super) fn ok(done: String) -> Reply {
    Reply::Ok { done }
}

/// Answers a request that only needs the profile; `None` for those that
/// need the running client (`send`, `stats`, `follow`).
pub fn answer(profile: &Profile, request: &Request) -> Option<Reply> {
    let reply = match request {
        Request::Send { .. }
        | Request::Reply { .. }
        | Request::Call { .. }
        | Request::AnswerCall { .. }
        | Request::Candidate { .. }
        | Request::HangUp { .. }
        | Request::SendFile { .. }
        | Request::Progress { .. }
        | Request::Stats
        | Request::Follow => return None,
        Request::Save { seq, path } => match save_file(profile, *seq, path) {
            Ok((path, bytes)) => Reply::Saved { path, bytes },
            Err(e) => failed(e),
        },
        Request::Contacts => match profile.contacts() {
            Ok(contacts) => Reply::Contacts {
                contacts: contacts
                    .into_iter()
                    .map(|(_, r)| ContactView {
                        name: r.name,
                        state: state_word(r.state).into(),
                        verified: r.verified,
                        session: r.confirmed,
                        added_ms: r.added_ms,
                    })
                    .collect(),
            },
            Err(e) => failed(e),
        },
        Request::Card => Reply::Card {
            card: profile.card().encode(),
        },
        Request::AddContact { name, card } => match profile.add_contact(name, card) {
            Ok(_) => ok(format!("added {}", name.trim())),
            Err(e) => failed(e),
        },
        Request::Rename { name, new_name } => match profile.rename_contact(name, new_name) {
            Ok(()) => ok(format!("{name} is now {}", new_name.trim())),
            Err(e) => failed(e),
        },
        Request::Accept { name, new_name } => {
            match profile.accept_contact(name, new_name.as_deref()) {
                Ok(()) => ok(format!(
                    "accepted {}",
                    new_name.as_deref().unwrap_or(name).trim()
                )),
                Err(e) => failed(e),
            }
        }
        Request::Block { name } => match profile.block_contact(name) {
            Ok(()) => ok(format!("blocked {name}")),
            Err(e) => failed(e),
        },
        Request::Remove { name } => match profile.remove_contact(name) {
            Ok(_) => ok(format!("removed {name}")),
            Err(e) => failed(e),
        },
        Request::Safety { name } => match (profile.safety_number(name), profile.named(name)) {
            (Ok(number), Ok((_, record))) => Reply::Safety {
                name: record.name,
                digits: number.digits().to_owned(),
                verified: record.verified,
            },
            (Err(e), _) | (_, Err(e)) => failed(e),
        },
        Request::Verify { name, digits } => match profile.verify_contact(name, digits.as_deref()) {
            Ok(()) => ok(format!("{name} is verified")),
            Err(e) => failed(e),
        },
        Request::History { with } => {
            let messages = match with {
                Some(name) => profile.named(name).and_then(|(id, _)| profile.history(&id)),
                None => profile.messages(),
            };
            match messages.and_then(|m| views(profile, m)) {
                Ok(messages) => Reply::History { messages },
                Err(e) => failed(e),
            }
        }
        Request::Delete { seq } => match profile.delete_message(*seq) {
            Ok(true) => Reply::Deleted { count: 1 },
            Ok(false) => failed(format!("no message #{seq}")),
            Err(e) => failed(e),
        },
        Request::DeleteHistory { with } => {
            match profile
                .named(with)
                .and_then(|(id, _)| profile.delete_history(&id))
            {
                Ok(count) => Reply::Deleted { count },
                Err(e) => failed(e),
            }
        }
    };
    Some(reply)
}

/// The reply form of a client event.
pub fn event_reply(event: Event) -> Reply {
    match event {
        Event::Connected { epoch } => Reply::Connected { epoch },
        Event::Status {
            local_id, status, ..
        } => Reply::Status {
            id: local_id.0,
            status: status_word(status).to_owned(),
        },
        Event::Message {
            name,
            body,
            request,
            seq,
            file,
            thread,
            from,
        } => Reply::Message {
            from: name,
            text: text_of(&file, &body),
            request,
            seq,
            file: file.map(|f| FileView::new(f, body.len())),
            anonymous: thread.is_some_and(|t| from == thread_contact(&t)),
            thread: thread.map(hex::encode),
        },
        Event::Call {
            call, name, kind, ..
        } => call_reply(call, name, kind),
        Event::ContactRequest { name, .. } => Reply::ContactRequest { name },
        Event::Lagged { missed } => Reply::Lagged { missed },
    }
}

/// The reply form of the traffic figures.
pub fn stats_reply(s: &NetworkStats) -> Reply {
    Reply::Stats {
        real_sent: s.real_sent,
        loops_sent: s.loops_sent,
        drops_sent: s.drops_sent,
        loops_returned: s.loops_returned,
        loop_rtt_p50_ms: s.loop_rtt_p50_ms,
        blocked_dropped: s.blocked_dropped,
        events_missed: s.events_missed,
        acks_withheld: s.acks_withheld,
        release_overruns: s.release_overruns,
    }
}

/// Answers a request with a running client (everything but `follow`,
/// which the caller handles by streaming events).
pub async fn answer_online(client: &Client, request: Request) -> Reply {
    match request {
        Request::Send {
            to,
            text,
            anonymous,
        } => {
            let queued = match client.contact(&to).await {
                Ok((contact, _)) if anonymous => {
                    client.send_anonymous(contact, text.into_bytes()).await
                }
                Ok((contact, _)) => client.send(contact, text.into_bytes()).await,
                Err(e) => Err(e),
            };
            match queued {
                Ok(id) => Reply::Queued { id: id.0, to },
                Err(e) => failed(e),
            }
        }
        Request::Reply { seq, text } => match client.reply(seq, text.into_bytes()).await {
            Ok(id) => Reply::Queued {
                id: id.0,
                to: format!("#{seq}"),
            },
            Err(e) => failed(e),
        },
        Request::Call { .. }
        | Request::AnswerCall { .. }
        | Request::Candidate { .. }
        | Request::HangUp { .. } => match call_request(client, request).await {
            Ok(reply) => reply,
            Err(e) => failed(e),
        },
        Request::SendFile {
            to,
            path,
            name,
            media_type,
        } => match send_file(client, &to, &path, name, media_type).await {
            Ok(id) => Reply::Queued { id, to },
            Err(e) => failed(e),
        },
        Request::Progress { id } => progress(client, LocalId(id)).await,
        Request::Stats => match client.stats().await {
            Ok(s) => stats_reply(&s),
            Err(e) => failed(e),
        },
        Request::Follow => ok("following".into()),
        other => match client.with_profile(move |p| answer(p, &other)).await {
            Ok(Some(reply)) => reply,
            Ok(None) => failed("not a profile request"),
            Err(e) => failed(e),
        },
    }
}
/// Where the daemon of the profile at `profile` listens: a socket beside
/// the profile directory, `<profile>.sock`.
pub fn socket_path(profile: &Path) -> PathBuf {
    let mut name = profile.as_os_str().to_owned();
    name.push(".sock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_keep_the_serve_format_and_refuse_unknown_fields() {
        let send: Request = serde_json::from_str(r#"{"send":{"to":"bob","text":"hi"}}"#).unwrap();
        assert_eq!(
            send,
            Request::Send {
                to: "bob".into(),
                text: "hi".into(),
                anonymous: false,
            }
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#""stats""#).unwrap(),
            Request::Stats
        );
        assert!(serde_json::from_str::<Request>(r#"{"send":{"to":"bob","txt":"hi"}}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#""reboot""#).is_err());
        let line = serde_json::to_string(&Reply::Queued {
            id: 3,
            to: "bob".into(),
        })
        .unwrap();
        assert_eq!(line, r#"{"event":"queued","id":3,"to":"bob"}"#);
    }
}
