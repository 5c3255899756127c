//! Commands that keep the client online: sending without a daemon,
//! following the inbox, chat, `serve` and `daemon`.

use std::path::Path;
use std::time::Duration;

use aegis_client::api::{Client, ClientConfig, Event};
use aegis_client::control::{self, Reply, Request};
use aegis_client::daemon::Connection;
use aegis_client::profile::Profile;
use aegis_client::{ContactId, MessageStatus};
use anyhow::bail;
use tokio::io::AsyncBufReadExt as _;

use super::output::{emit, print_reply};

/// Without a daemon: goes online, sends, and waits for the outcome.
pub(crate) async fn send_online(
    profile: Profile,
    config: ClientConfig,
    contact: ContactId,
    message: String,
    timeout: u64,
) -> anyhow::Result<()> {
    eprintln!("connecting…");
    let (client, mut events) = Client::start(profile, config).await?;
    let id = client.send(contact, message.into_bytes()).await?;
    eprintln!("queued; waiting for delivery (up to {timeout} s)");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let mut outcome = None;
    while outcome.is_none() {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(Event::Status {
                local_id, status, ..
            })) if local_id == id => {
                eprintln!("{}", control::status_word(status));
                if matches!(status, MessageStatus::Delivered | MessageStatus::Failed) {
                    outcome = Some(status);
                }
            }
            Ok(Some(event @ Event::Message { .. })) => print_reply(&control::event_reply(event))?,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    client.shutdown().await?;
    match outcome {
        Some(MessageStatus::Delivered) => Ok(()),
        Some(_) => bail!("the message could not be delivered"),
        None => bail!("no delivery confirmation within {timeout} s; it stays queued"),
    }
}

/// Without a daemon: goes online for `wait` seconds (or until Ctrl-C with
/// `follow`), printing what arrives; hands the profile back.
pub(crate) async fn fetch_for(
    profile: Profile,
    config: ClientConfig,
    wait: u64,
    follow: bool,
) -> anyhow::Result<Profile> {
    let (client, mut events) = Client::start(profile, config).await?;
    // Following, the client stays online until Ctrl-C (ten years).
    let online = Duration::from_secs(if follow { 10 * 365 * 86_400 } else { wait });
    let deadline = tokio::time::Instant::now() + online;
    loop {
        let event = tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            event = tokio::time::timeout_at(deadline, events.recv()) => match event {
                Ok(Some(event)) => event,
                _ => break,
            },
        };
        match event {
            Event::ContactRequest { .. } | Event::Message { .. } if follow => {
                print_reply(&control::event_reply(event))?;
            }
            Event::ContactRequest { name, .. } => eprintln!("contact request from {name}"),
            _ => {}
        }
    }
    Ok(client.shutdown().await?)
}

/// Prints the daemon's events until it stops or Ctrl-C.
pub(crate) async fn follow_daemon(mut connection: Connection) -> anyhow::Result<()> {
    connection.request(&Request::Follow).await?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            reply = connection.next() => match reply? {
                Some(Reply::Connected { .. } | Reply::Stats { .. }) => {}
                Some(reply) => print_reply(&reply)?,
                None => return Ok(()),
            },
        }
    }
}

pub(crate) async fn chat(
    profile: Profile,
    config: ClientConfig,
    contact: ContactId,
) -> anyhow::Result<()> {
    let (client, mut events) = Client::start(profile, config).await?;
    eprintln!("connected; type a message and press Enter (Ctrl-D to quit)");
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => match line? {
                None => break,
                Some(text) if text.trim().is_empty() => {}
                Some(text) => {
                    let id = client.send(contact, text.into_bytes()).await?;
                    eprintln!("[#{} queued]", id.0);
                }
            },
            event = events.recv() => match event {
                None => break,
                Some(event @ (Event::Message { .. } | Event::Status { .. })) => {
                    print_reply(&control::event_reply(event))?;
                }
                Some(_) => {}
            },
        }
    }
    client.shutdown().await?;
    Ok(())
}

/// The chat, with the daemon doing the sending.
pub(crate) async fn chat_through_daemon(
    mut connection: Connection,
    with: String,
) -> anyhow::Result<()> {
    connection.request(&Request::Follow).await?;
    eprintln!("type a message and press Enter (Ctrl-D to quit)");
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => match line? {
                None => return Ok(()),
                Some(text) if text.trim().is_empty() => {}
                Some(text) => {
                    let request = Request::Send { to: with.clone(), text, signal: false };
                    connection.send(&request).await?;
                }
            },
            reply = connection.next() => match reply? {
                None => return Ok(()),
                Some(Reply::Error { message }) => eprintln!("error: {message}"),
                Some(reply @ (Reply::Message { .. } | Reply::Status { .. } | Reply::Queued { .. })) => {
                    print_reply(&reply)?;
                }
                Some(_) => {}
            },
        }
    }
}

/// `aegis serve`: the control protocol on standard input and output.
pub(crate) async fn serve(profile: Profile, config: ClientConfig) -> anyhow::Result<()> {
    let (client, mut events) = Client::start(profile, config).await?;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            line = lines.next_line() => match line? {
                None => break,
                Some(line) if line.trim().is_empty() => {}
                Some(line) => match serde_json::from_str::<Request>(&line) {
                    Ok(request) => emit(&control::answer_online(&client, request).await),
                    Err(e) => emit(&Reply::Error { message: format!("bad request: {e}") }),
                },
            },
            event = events.recv() => match event {
                None => break,
                Some(event) => emit(&control::event_reply(event)),
            },
        }
    }
    client.shutdown().await?;
    Ok(())
}

/// `aegis serve` while a daemon runs: the same protocol on standard input
/// and output, relayed to the daemon with its events, so an app speaks to
/// `serve` alike whether or not a daemon keeps the profile online. Ends
/// when standard input does; the daemon stays online.
pub(crate) async fn serve_through_daemon(mut connection: Connection) -> anyhow::Result<()> {
    connection.request(&Request::Follow).await?;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
            line = lines.next_line() => match line? {
                None => return Ok(()),
                Some(line) if line.trim().is_empty() => {}
                Some(line) => match serde_json::from_str::<Request>(&line) {
                    Ok(request) => connection.send(&request).await?,
                    Err(e) => emit(&Reply::Error { message: format!("bad request: {e}") }),
                },
            },
            reply = connection.next() => match reply? {
                None => bail!("the daemon closed the connection"),
                Some(reply) => emit(&reply),
            },
        }
    }
}

/// `aegis daemon`: online until SIGTERM or Ctrl-C, serving the socket.
pub(crate) async fn run_daemon(
    profile: Profile,
    config: ClientConfig,
    socket: &Path,
) -> anyhow::Result<()> {
    let listener = aegis_client::daemon::bind(socket).await?;
    let (client, events) = match Client::start(profile, config).await {
        Ok(started) => started,
        Err(error) => {
            let _ = std::fs::remove_file(socket);
            return Err(error.into());
        }
    };
    eprintln!(
        "online; other aegis commands for this profile now go through {}",
        socket.display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stop = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    let client = aegis_client::daemon::serve(client, events, listener, socket, stop).await;
    match std::sync::Arc::try_unwrap(client) {
        Ok(client) => {
            client.shutdown().await?;
        }
        Err(_) => bail!("the client was still in use at shutdown"),
    }
    eprintln!("stopped");
    Ok(())
}
