//! An echo bot on the client library: it stays online with an existing
//! profile, accepts every contact request, and answers each message with
//! the same text (an anonymous one over the reply blocks it brought). What an app needs in fifty lines: start a `Client`, read
//! its bounded event stream, use the profile while online.
//!
//! ```text
//! aegis --profile bot init --authority URL=HEXKEY
//! AEGIS_PASSPHRASE=… cargo run -p aegis-client --example echo_bot -- bot
//! ```
//!
//! Then give people the bot's card (`aegis --profile bot contact show`).

use std::time::Duration;

use aegis_client::api::{Client, ClientConfig, Event};
use aegis_client::profile::{Profile, thread_contact};
use anyhow::Context as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .context("usage: echo_bot PROFILE_DIR (passphrase in AEGIS_PASSPHRASE)")?;
    let passphrase = std::env::var("AEGIS_PASSPHRASE").context("set AEGIS_PASSPHRASE")?;
    let profile = Profile::open(path.as_ref(), passphrase.as_bytes())?;
    let (client, mut events) = Client::start(profile, ClientConfig::default()).await?;
    eprintln!("online; card: {}", client.card().await?);
    loop {
        let event = tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            event = events.recv() => match event {
                Some(event) => event,
                None => break,
            },
        };
        match event {
            Event::ContactRequest { name, .. } => {
                // A bot talks to anyone; a person would look first.
                client.accept_contact(&name, None).await?;
                eprintln!("accepted {name}");
            }
            Event::Message {
                from,
                name,
                body,
                seq,
                thread,
                file: None,
                ..
            } => {
                // Someone who wrote anonymously is answered over the reply
                // blocks they sent; a failure is reported, not fatal.
                let echoed = match thread {
                    Some(thread) if from == thread_contact(&thread) => {
                        client.reply(seq, body).await
                    }
                    _ => client.send(from, body).await,
                };
                match echoed {
                    Ok(id) => eprintln!("echoing to {name} (#{})", id.0),
                    Err(error) => eprintln!("cannot echo to {name}: {error}"),
                }
            }
            Event::Lagged { missed } => eprintln!("{missed} events missed"),
            _ => {}
        }
    }
    // The outbox is saved; anything still queued leaves next time.
    tokio::time::timeout(Duration::from_secs(10), client.shutdown())
        .await
        .context("shutting down")??;
    Ok(())
}
