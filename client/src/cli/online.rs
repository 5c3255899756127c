//! Commands that keep the client online: sending without a daemon,
//! following the inbox, chat, `serve` and `daemon`.

use std::path::Path;
use std::time::Duration;

use aegis_client::api::{Client, ClientConfig, Event};
use aegis_client::control::{self, Reply, Request};
use aegis_client::daemon::Connection;
use aegis_client::file::{FileMeta, max_file_len};
use aegis_client::profile::Profile;
use aegis_client::{ContactId, MessageStatus};
use aegis_mix_packet::Geometry;
use anyhow::{Context as _, bail};
use tokio::io::AsyncBufReadExt as _;

use super::output::{emit, print_reply, progress_bar};

/// What `aegis send` sends.
pub(crate) enum Outgoing {
    /// A text message.
    Text(String),
    /// A text message written anonymously.
    Anonymous(String),
    /// A file: its name and type, and its bytes.
    File(FileMeta, Vec<u8>),
}

impl Outgoing {
    /// Reads the file at `path` (its name from the path, its type given or
    /// guessed), refusing one too large for a message before reading it.
    pub(crate) fn file(path: &Path, media_type: Option<&str>) -> anyhow::Result<Outgoing> {
        let name = path
            .file_name()
            .with_context(|| format!("{} names no file", path.display()))?
            .to_string_lossy()
            .into_owned();
        let meta = FileMeta::for_name(&name, media_type)
            .with_context(|| format!("cannot send {name:?} as {media_type:?}"))?;
        // The network's geometry is known once online, where the client
        // checks against it; before, refuse what no known geometry carries.
        let max = Geometry::KNOWN
            .iter()
            .map(|g| max_file_len(g, &meta))
            .max()
            .unwrap_or(0);
        let len = std::fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        if len > max as u64 {
            bail!(
                "{} is {len} bytes; one message carries at most {max} bytes",
                path.display()
            );
        }
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Outgoing::File(meta, data))
    }
}

/// A progress bar on standard error: redrawn in place at a terminal,
/// otherwise a line for every tenth of the way.
pub(crate) struct ProgressDisplay {
    terminal: bool,
    shown: Option<usize>,
    fragments: usize,
}

impl ProgressDisplay {
    pub(crate) fn new() -> ProgressDisplay {
        use std::io::IsTerminal as _;
        ProgressDisplay {
            terminal: std::io::stderr().is_terminal(),
            shown: None,
            fragments: 0,
        }
    }

    pub(crate) fn show(&mut self, acknowledged: usize, sent: usize, fragments: usize) {
        self.fragments = fragments;
        let bar = progress_bar(acknowledged, sent, fragments);
        if self.terminal {
            eprint!("\r{bar}");
        } else {
            let tenth = acknowledged * 10 / fragments.max(1);
            if self.shown != Some(tenth) {
                eprintln!("{bar}");
            }
            self.shown = Some(tenth);
        }
    }

    /// Ends the bar's line; `delivered`: at 100 % (the outbox lets a
    /// message go once its last fragment is acknowledged, so the last
    /// figures asked for may fall short of it).
    pub(crate) fn finish(&mut self, delivered: bool) {
        if delivered && self.fragments > 0 {
            let all = self.fragments;
            self.show(all, all, all);
        }
        if self.terminal {
            eprintln!();
        }
    }
}

/// Without a daemon: goes online, sends, and waits for the outcome (with
/// a progress bar for a file).
pub(crate) async fn send_online(
    profile: Profile,
    config: ClientConfig,
    contact: ContactId,
    outgoing: Outgoing,
    timeout: u64,
) -> anyhow::Result<()> {
    eprintln!("connecting…");
    let (client, events) = Client::start(profile, config).await?;
    let (id, bar) = match outgoing {
        Outgoing::Text(text) => (client.send(contact, text.into_bytes()).await?, None),
        Outgoing::Anonymous(text) => (
            client.send_anonymous(contact, text.into_bytes()).await?,
            None,
        ),
        Outgoing::File(meta, data) => (
            client.send_file(contact, &meta, &data).await?,
            Some(ProgressDisplay::new()),
        ),
    };
    eprintln!("queued; waiting for delivery (up to {timeout} s)");
    await_delivery(client, events, id, bar, timeout).await
}

/// Waits for message `id`'s outcome (showing `bar` for a file, and what
/// arrives meanwhile), then takes the client offline; an error unless it
/// was delivered within `timeout` seconds.
async fn await_delivery(
    client: Client,
    mut events: tokio::sync::mpsc::Receiver<Event>,
    id: aegis_client::LocalId,
    mut bar: Option<ProgressDisplay>,
    timeout: u64,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut outcome = None;
    while outcome.is_none() {
        let event = tokio::select! {
            event = tokio::time::timeout_at(deadline, events.recv()) => event,
            _ = tick.tick(), if bar.is_some() => {
                if let (Some(bar), Some(p)) = (bar.as_mut(), client.progress(id).await?) {
                    bar.show(p.acknowledged, p.sent, p.fragments);
                }
                continue;
            }
        };
        match event {
            Ok(Some(Event::Status {
                local_id, status, ..
            })) if local_id == id => {
                if matches!(status, MessageStatus::Delivered | MessageStatus::Failed) {
                    outcome = Some(status);
                } else if bar.is_none() {
                    eprintln!("{}", control::status_word(status));
                }
            }
            Ok(Some(event @ Event::Message { .. })) => print_reply(&control::event_reply(event))?,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    if let Some(bar) = bar.as_mut() {
        bar.finish(outcome == Some(MessageStatus::Delivered));
    }
    if let Some(status) = outcome {
        eprintln!("{}", control::status_word(status));
    }
    client.shutdown().await?;
    match outcome {
        Some(MessageStatus::Delivered) => Ok(()),
        Some(_) => bail!("the message could not be delivered"),
        None => bail!("no delivery confirmation within {timeout} s; it stays queued"),
    }
}

/// Without a daemon: goes online, answers the anonymous message `seq` and
/// waits until the answer is delivered (or two minutes pass).
pub(crate) async fn reply_online(
    profile: Profile,
    config: ClientConfig,
    seq: u64,
    text: String,
) -> anyhow::Result<()> {
    let (client, events) = Client::start(profile, config).await?;
    let id = match client.reply(seq, text.into_bytes()).await {
        Ok(id) => id,
        Err(error) => {
            client.shutdown().await?;
            return Err(error.into());
        }
    };
    println!("queued #{} to #{seq}", id.0);
    await_delivery(client, events, id, None, 120).await
}

/// With a daemon: shows message `id`'s progress until it is delivered
/// (an error if it failed).
pub(crate) async fn progress_through_daemon(
    connection: &mut Connection,
    id: u64,
) -> anyhow::Result<()> {
    let mut bar = ProgressDisplay::new();
    loop {
        match connection.request(&Request::Progress { id }).await? {
            Reply::Progress {
                sent,
                acknowledged,
                fragments,
                ..
            } => bar.show(acknowledged, sent, fragments),
            Reply::Status { status, .. } => {
                bar.finish(status == "delivered");
                eprintln!("#{id} {status}");
                if status != "delivered" {
                    bail!("the message could not be delivered");
                }
                return Ok(());
            }
            other => {
                bar.finish(false);
                return print_reply(&other);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
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
                    let request = Request::Send { to: with.clone(), text, anonymous: false };
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
