//! How the control protocol shows contacts, history entries, files and
//! calls.

use aegis_proto::{ContactId, MessageStatus};
use serde::{Deserialize, Serialize};

use super::Reply;
use crate::call::{CallEventKind, CallId};
use crate::file::FileMeta;
use crate::profile::{
    ContactState, Profile, ProfileError, StoredMessage, anonymous_name, thread_contact,
};

/// A contact as the control protocol shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactView {
    /// The name.
    pub name: String,
    /// `contact`, `request` or `blocked`.
    pub state: String,
    /// Whether the safety number was compared.
    pub verified: bool,
    /// Whether they have answered (a session is established).
    pub session: bool,
    /// Unix ms when added (0 if unknown).
    pub added_ms: u64,
}

/// A history entry as the control protocol shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    /// Its sequence number.
    pub seq: u64,
    /// The contact's name (`?` if removed).
    pub contact: String,
    /// `in` or `out`.
    pub direction: String,
    /// Unix ms received (in) or queued (out).
    pub time_ms: u64,
    /// A signalling message.
    pub signal: bool,
    /// The text (invalid UTF-8 replaced).
    pub text: String,
    /// For a sent message: its id.
    pub id: Option<u64>,
    /// For a sent message: its latest status.
    pub status: Option<String>,
    /// For a file: its name, type and size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileView>,
    /// Of an anonymous thread (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// The other side is an anonymous writer.
    #[serde(default)]
    pub anonymous: bool,
}

/// A file as the control protocol shows it (its bytes stay in the
/// history until `save`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileView {
    /// Its name.
    pub name: String,
    /// Its media type.
    pub media_type: String,
    /// Its length in bytes.
    pub bytes: usize,
}

impl FileView {
    pub(super) fn new(meta: FileMeta, bytes: usize) -> FileView {
        FileView {
            name: meta.name,
            media_type: meta.media_type,
            bytes,
        }
    }
}

/// The text shown for a message: its body, or nothing for a file.
pub(super) fn text_of(file: &Option<FileMeta>, body: &[u8]) -> String {
    match file {
        Some(_) => String::new(),
        None => String::from_utf8_lossy(body).into_owned(),
    }
}

/// The word for a status.
pub fn status_word(status: MessageStatus) -> &'static str {
    match status {
        MessageStatus::Queued => "queued",
        MessageStatus::Sent => "sent",
        MessageStatus::Delivered => "delivered",
        MessageStatus::Failed => "failed",
    }
}

pub(super) fn state_word(state: ContactState) -> &'static str {
    match state {
        ContactState::Contact => "contact",
        ContactState::Request => "request",
        ContactState::Blocked => "blocked",
    }
}

/// History entries for people.
pub(super) fn views(
    profile: &Profile,
    messages: Vec<StoredMessage>,
) -> Result<Vec<MessageView>, ProfileError> {
    let names: std::collections::HashMap<ContactId, String> = profile
        .contacts()?
        .into_iter()
        .map(|(id, r)| (id, r.name))
        .collect();
    Ok(messages
        .into_iter()
        .map(|m| MessageView {
            seq: m.seq,
            anonymous: m.thread.is_some_and(|t| m.contact == thread_contact(&t)),
            contact: match (names.get(&m.contact), m.thread) {
                (Some(name), _) => name.clone(),
                (None, Some(thread)) => anonymous_name(&thread),
                (None, None) => "?".into(),
            },
            thread: m.thread.map(hex::encode),
            direction: if m.sent.is_some() { "out" } else { "in" }.into(),
            time_ms: m.received_ms,
            signal: m.signal,
            text: text_of(&m.file, &m.body),
            id: m.sent.map(|s| s.local_id.0),
            status: m.sent.map(|s| status_word(s.status).into()),
            file: m.file.map(|f| FileView::new(f, m.body.len())),
        })
        .collect())
}

/// The reply form of a call event.
pub(super) fn call_reply(call: CallId, with: String, kind: CallEventKind) -> Reply {
    let (state, description, candidate, ended) = match kind {
        CallEventKind::Ringing { description } => ("ringing", Some(description), None, None),
        CallEventKind::Connected { description } => ("connected", Some(description), None, None),
        CallEventKind::Candidate { candidate } => ("candidate", None, Some(candidate), None),
        CallEventKind::Ended { reason, by_them } => ("ended", None, None, Some((reason, by_them))),
    };
    Reply::Call {
        id: call.to_hex(),
        with,
        state: state.into(),
        description,
        candidate,
        reason: ended.map(|(reason, _)| reason.word().into()),
        by_them: ended.map(|(_, by_them)| by_them),
    }
}

/// A call reply that only says where the call stands.
pub(super) fn call_state(call: CallId, with: String, state: &str) -> Reply {
    Reply::Call {
        id: call.to_hex(),
        with,
        state: state.into(),
        description: None,
        candidate: None,
        reason: None,
        by_them: None,
    }
}
