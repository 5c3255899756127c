//! `aegis call`: places or answers a call through the control protocol,
//! the same whether a daemon holds the profile or this process goes
//! online itself. Only signalling travels (offer, answer, one candidate
//! each way, hang-up); the session description says there is no media.

use std::collections::VecDeque;
use std::time::Duration;

use aegis_client::api::{Client, ClientConfig, Event};
use aegis_client::control::{self, Reply, Request};
use aegis_client::daemon::Connection;
use aegis_client::profile::Profile;
use anyhow::{Context as _, bail};
use tokio::sync::mpsc;

use super::output::print_reply;

/// Where requests go and replies and events come from.
pub(crate) enum Line {
    /// A running daemon (following its events).
    Daemon(Connection),
    /// A client online in this process.
    Local {
        client: Client,
        events: mpsc::Receiver<Event>,
        replies: VecDeque<Reply>,
    },
}

impl Line {
    /// Through the daemon: asks it to send events.
    pub(crate) async fn daemon(mut connection: Connection) -> anyhow::Result<Line> {
        connection.request(&Request::Follow).await?;
        Ok(Line::Daemon(connection))
    }

    /// Without a daemon: goes online here.
    pub(crate) async fn local(profile: Profile, config: ClientConfig) -> anyhow::Result<Line> {
        let (client, events) = Client::start(profile, config).await?;
        Ok(Line::Local {
            client,
            events,
            replies: VecDeque::new(),
        })
    }

    async fn send(&mut self, request: Request) -> anyhow::Result<()> {
        match self {
            Line::Daemon(connection) => connection.send(&request).await?,
            Line::Local {
                client, replies, ..
            } => replies.push_back(control::answer_online(client, request).await),
        }
        Ok(())
    }

    async fn next(&mut self) -> anyhow::Result<Option<Reply>> {
        match self {
            Line::Daemon(connection) => Ok(connection.next().await?),
            Line::Local {
                events, replies, ..
            } => match replies.pop_front() {
                Some(reply) => Ok(Some(reply)),
                None => Ok(events.recv().await.map(control::event_reply)),
            },
        }
    }

    async fn close(self) -> anyhow::Result<()> {
        if let Line::Local { client, .. } = self {
            client.shutdown().await?;
        }
        Ok(())
    }
}

/// A session description with no media sections (RFC 8866's required
/// lines only): a media stack would put its own here.
fn description() -> String {
    let session: u64 = rand::random::<u64>() >> 1;
    format!("v=0\r\no=- {session} 1 IN IP4 0.0.0.0\r\ns=aegis call\r\nt=0 0\r\n")
}

/// The candidate each side sends: a host candidate on the discard port of
/// the unspecified address, as no media will flow.
const CANDIDATE: &str = "candidate:1 1 udp 2122260223 0.0.0.0 9 typ host";

/// What the user asked for.
pub(crate) enum Role {
    /// Call this contact; hang up after `hold` once connected (or when
    /// they hang up, or at Ctrl-C).
    Caller { to: String, hold: Option<Duration> },
    /// Wait up to `wait` for a call (from `from`, or anyone), answer it,
    /// stay until it ends (or Ctrl-C).
    Callee {
        from: Option<String>,
        wait: Duration,
    },
}

/// Runs one call to its end; an error if it never connected.
pub(crate) async fn call(mut line: Line, role: Role) -> anyhow::Result<()> {
    let outcome = run(&mut line, role).await;
    line.close().await?;
    outcome
}

async fn run(line: &mut Line, role: Role) -> anyhow::Result<()> {
    let far = tokio::time::Instant::now() + Duration::from_secs(10 * 365 * 86_400);
    let (mut deadline, hold) = match &role {
        Role::Caller { to, hold } => {
            line.send(Request::Call {
                to: to.clone(),
                description: description(),
            })
            .await?;
            (far, *hold)
        }
        Role::Callee { wait, .. } => {
            eprintln!("waiting for a call…");
            (tokio::time::Instant::now() + *wait, None)
        }
    };
    let mut ours: Option<String> = None;
    let mut connected = false;
    loop {
        let reply = tokio::select! {
            reply = line.next() => reply?.context("the client stopped")?,
            _ = tokio::time::sleep_until(deadline) => {
                match &ours {
                    Some(id) => {
                        line.send(Request::HangUp { id: id.clone() }).await?;
                        deadline = far;
                        continue;
                    }
                    None => bail!("no call came"),
                }
            }
            _ = tokio::signal::ctrl_c() => match &ours {
                Some(id) => {
                    line.send(Request::HangUp { id: id.clone() }).await?;
                    continue;
                }
                None => bail!("interrupted"),
            },
        };
        let Reply::Call {
            id, with, state, ..
        } = &reply
        else {
            if let Reply::Error { message } = &reply {
                bail!("{message}");
            }
            continue;
        };
        let mine = ours.as_deref() == Some(id.as_str());
        match (state.as_str(), &role) {
            ("offering", Role::Caller { .. }) if ours.is_none() => {
                ours = Some(id.clone());
                print_reply(&reply)?;
            }
            ("ringing", Role::Callee { from, .. })
                if ours.is_none() && from.as_ref().is_none_or(|f| f == with) =>
            {
                print_reply(&reply)?;
                ours = Some(id.clone());
                line.send(Request::AnswerCall {
                    id: id.clone(),
                    description: description(),
                })
                .await?;
                deadline = far;
            }
            ("connected", _) if mine => {
                connected = true;
                print_reply(&reply)?;
                line.send(Request::Candidate {
                    id: id.clone(),
                    candidate: CANDIDATE.into(),
                })
                .await?;
                if let Some(hold) = hold {
                    deadline = tokio::time::Instant::now() + hold;
                }
            }
            ("candidate", _) if mine => print_reply(&reply)?,
            ("ended", _) if mine => {
                print_reply(&reply)?;
                if !connected {
                    bail!("the call did not connect");
                }
                return Ok(());
            }
            _ => {}
        }
    }
}
