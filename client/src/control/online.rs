//! Requests that need the running client beyond sending a message: files
//! (read, queued, followed, saved) and calls.

use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use aegis_proto::LocalId;

use super::views::{call_state, status_word};
use super::{Reply, Request, failed, ok};
use crate::api::Client;
use crate::call::CallId;
use crate::file::{FileMeta, max_file_len};
use crate::profile::Profile;

/// Carries out a call request; the reply says where the call stands.
pub(super) async fn call_request(client: &Client, request: Request) -> Result<Reply, String> {
    let id_of = |id: &str| CallId::from_hex(id).ok_or_else(|| format!("{id:?} is no call id"));
    let text = |e: crate::api::ClientError| e.to_string();
    match request {
        Request::Call { to, description } => {
            let contact = client.contact(&to).await.map_err(text)?.0;
            let call = client
                .place_call(contact, description)
                .await
                .map_err(text)?;
            Ok(call_state(call, to, "offering"))
        }
        Request::AnswerCall { id, description } => {
            let call = id_of(&id)?;
            client.answer_call(call, description).await.map_err(text)?;
            Ok(call_state(call, String::new(), "connected"))
        }
        Request::Candidate { id, candidate } => {
            client
                .send_candidate(id_of(&id)?, candidate)
                .await
                .map_err(text)?;
            Ok(ok("candidate sent".into()))
        }
        Request::HangUp { id } => {
            client.hang_up(id_of(&id)?).await.map_err(text)?;
            Ok(ok("hung up".into()))
        }
        _ => Err("not a call request".into()),
    }
}

/// Reads the file at `path` (refusing one too large to send before
/// reading it) and queues it.
pub(super) async fn send_file(
    client: &Client,
    to: &str,
    path: &Path,
    name: Option<String>,
    media_type: Option<String>,
) -> Result<u64, String> {
    let name = match name {
        Some(name) => name,
        None => path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| format!("{} names no file", path.display()))?,
    };
    let meta = FileMeta::for_name(&name, media_type.as_deref())
        .map_err(|e| format!("{e} ({name:?}, {media_type:?})"))?;
    let contact = client.contact(to).await.map_err(|e| e.to_string())?.0;
    let max = max_file_len(client.geometry(), &meta);
    let len = tokio::fs::metadata(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if len > max as u64 {
        return Err(format!(
            "{} is {len} bytes; one message carries at most {max} bytes",
            path.display()
        ));
    }
    let data = tokio::fs::read(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let id = client
        .send_file(contact, &meta, &data)
        .await
        .map_err(|e| e.to_string())?;
    Ok(id.0)
}

/// The progress of a message in the outbox, or its final status from the
/// history once it has left.
pub(super) async fn progress(client: &Client, id: LocalId) -> Reply {
    match client.progress(id).await {
        Ok(Some(p)) => Reply::Progress {
            id: id.0,
            status: status_word(p.status).into(),
            fragments: p.fragments,
            sent: p.sent,
            acknowledged: p.acknowledged,
        },
        Ok(None) => {
            let status = client
                .with_profile(move |p| p.sent_status(id))
                .await
                .map_err(|e| e.to_string())
                .and_then(|s| s.map_err(|e| e.to_string()));
            match status {
                Ok(Some(status)) => Reply::Status {
                    id: id.0,
                    status: status_word(status).into(),
                },
                Ok(None) => failed(format!("no message #{} in the outbox or history", id.0)),
                Err(e) => failed(e),
            }
        }
        Err(e) => failed(e),
    }
}

/// Writes the file of history entry `seq` to `path` (into it, under the
/// file's name, if it is a folder), never over an existing file.
pub(super) fn save_file(
    profile: &Profile,
    seq: u64,
    path: &Path,
) -> Result<(PathBuf, usize), String> {
    let message = profile
        .message(seq)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no message #{seq}"))?;
    let meta = message
        .file
        .ok_or_else(|| format!("message #{seq} is not a file"))?;
    let target = if path.is_dir() {
        path.join(&meta.name)
    } else {
        path.to_owned()
    };
    // Readable by its owner only, like the profile it comes from.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&target)
        .map_err(|e| format!("{}: {e}", target.display()))?;
    std::io::Write::write_all(&mut file, &message.body)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("{}: {e}", target.display()))?;
    Ok((target, message.body.len()))
}
