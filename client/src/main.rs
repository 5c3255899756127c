//! `aegis`: the AegisLink command-line client.
//!
//! The passphrase is read from `AEGIS_PASSPHRASE` if set, otherwise from the
//! first line of standard input (at a terminal, without echo).

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aegis_client::api::{Client, ClientConfig, Event, fetcher_for, pick_gateway};
use aegis_client::profile::Profile;
use aegis_client::store::{Argon2Params, Store};
use aegis_client::{ContactId, MessageStatus};
use aegis_directory::TrustedAuthority;
use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt as _;

#[derive(Parser)]
#[command(
    name = "aegis",
    version,
    about = "AegisLink client: private messages through a mixnet"
)]
struct Cli {
    /// The profile directory (default: `aegislink/profile` in the
    /// platform's data directory, `$XDG_DATA_HOME` or `~/.local/share`; an
    /// `aegis-profile` folder in the current directory, the old default, is
    /// still used if it exists).
    #[arg(long, global = true, env = "AEGIS_PROFILE")]
    profile: Option<PathBuf>,
    /// Seconds between mailbox pulls.
    #[arg(long, global = true, default_value_t = 1.0)]
    pull_interval: f64,
    /// Reach your gateway at this libp2p address instead of the published
    /// one (e.g. through a tunnel); its identity is still checked.
    #[arg(long, global = true, value_name = "MULTIADDR")]
    gateway_address: Option<aegis_link::Multiaddr>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a profile: keys generated here, a mailbox at a random gateway.
    Init {
        /// A directory authority as URL=HEXKEY (repeat for each).
        #[arg(long = "authority", required = true)]
        authorities: Vec<String>,
        /// Use fast (insecure) passphrase hashing; for tests only.
        #[arg(long, hide = true)]
        insecure_fast_kdf: bool,
    },
    /// Contacts.
    Contact {
        #[command(subcommand)]
        command: ContactCommand,
    },
    /// Send one message and wait until it is delivered (or failed).
    Send {
        /// The contact's name.
        to: String,
        /// The message.
        message: String,
        /// Give up waiting after this many seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Fetch new messages for a while, then print every stored message.
    Inbox {
        /// Seconds to stay online fetching.
        #[arg(long, default_value_t = 10)]
        wait: u64,
    },
    /// An interactive chat with one contact (type a line to send it).
    Chat {
        /// The contact's name.
        with: String,
    },
    /// Stay online; read JSON commands from stdin, print JSON events.
    Serve,
    /// Encrypted backups.
    Backup {
        #[command(subcommand)]
        command: BackupCommand,
    },
}

#[derive(Subcommand)]
enum ContactCommand {
    /// Print your contact card.
    Show,
    /// Add a contact from their card.
    Add {
        /// A name for them.
        name: String,
        /// Their card (`aegis1…`).
        card: String,
    },
    /// List contacts.
    List,
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Write an encrypted backup of the whole profile.
    Export {
        /// The backup file.
        file: PathBuf,
    },
    /// Restore a backup into a new profile directory (--profile).
    Import {
        /// The backup file.
        file: PathBuf,
    },
}

/// A command of `aegis serve`, one JSON object per line.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum ServeCommand {
    /// Send a message to a contact by name.
    Send { to: String, text: String },
    /// Print network figures.
    Stats,
}

/// An event of `aegis serve`, one JSON object per line.
#[derive(Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum ServeEvent {
    Connected {
        epoch: u64,
    },
    Queued {
        id: u64,
        to: String,
    },
    Status {
        id: u64,
        status: String,
    },
    Message {
        from: String,
        text: String,
        signal: bool,
    },
    NewContact {
        name: String,
    },
    Stats {
        real_sent: u64,
        loops_sent: u64,
        drops_sent: u64,
        loops_returned: u64,
        loop_rtt_p50_ms: Option<f64>,
    },
    Error {
        message: String,
    },
}

fn passphrase(prompt: &str) -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("AEGIS_PASSPHRASE") {
        return Ok(p);
    }
    eprint!("{prompt}: ");
    std::io::stderr().flush()?;
    let quiet = NoEcho::on_terminal();
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if quiet.is_some() {
        eprintln!();
    }
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Terminal echo turned off while a passphrase is typed (`stty -echo` on
/// the terminal that is standard input), and back on when dropped, also
/// after an error. Nothing is changed when standard input is not a
/// terminal (a pipe, as scripts and the launcher use).
struct NoEcho;

impl NoEcho {
    fn on_terminal() -> Option<NoEcho> {
        use std::io::IsTerminal as _;
        if !std::io::stdin().is_terminal() {
            return None;
        }
        stty("-echo").then_some(NoEcho)
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        stty("echo");
    }
}

/// Runs `stty ARG` on the terminal that is standard input.
fn stty(arg: &str) -> bool {
    std::process::Command::new("stty")
        .arg(arg)
        .stdin(std::process::Stdio::inherit())
        .status()
        .is_ok_and(|s| s.success())
}

/// The profile directory: the one given, else `./aegis-profile` if it
/// exists (the old default), else `aegislink/profile` in the platform's
/// data directory.
fn profile_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let old = PathBuf::from("aegis-profile");
    default_profile(
        given,
        old.exists(),
        std::env::var_os("XDG_DATA_HOME"),
        std::env::var_os("HOME"),
    )
    .context("no --profile, AEGIS_PROFILE, XDG_DATA_HOME or HOME to put the profile in")
}

/// [`profile_dir`] from what it reads: the given folder, whether the old
/// default exists, `XDG_DATA_HOME` (used only if absolute, as the XDG
/// specification says) and `HOME`.
fn default_profile(
    given: Option<PathBuf>,
    old_exists: bool,
    xdg_data_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    if given.is_some() {
        return given;
    }
    if old_exists {
        return Some(PathBuf::from("aegis-profile"));
    }
    let data = xdg_data_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home.map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(data.join("aegislink").join("profile"))
}

/// Makes the folder a new profile goes in, readable by its owner only.
fn make_parent(profile: &Path) -> anyhow::Result<()> {
    if let Some(parent) = profile.parent().filter(|p| !p.as_os_str().is_empty()) {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    Ok(())
}

fn open(path: &Path) -> anyhow::Result<Profile> {
    let pass = passphrase("passphrase")?;
    Profile::open(path, pass.as_bytes()).with_context(|| format!("opening {}", path.display()))
}

fn status_word(status: MessageStatus) -> &'static str {
    match status {
        MessageStatus::Queued => "queued",
        MessageStatus::Sent => "sent",
        MessageStatus::Delivered => "delivered",
        MessageStatus::Failed => "failed",
    }
}

fn contact_id(profile: &Profile, name: &str) -> anyhow::Result<ContactId> {
    Ok(profile
        .contact_by_name(name)?
        .with_context(|| format!("no contact named {name}; add one with `aegis contact add`"))?
        .0)
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let profile_path = profile_dir(cli.profile.clone())?;
    let config = ClientConfig {
        pull_interval: Duration::from_secs_f64(cli.pull_interval.clamp(0.05, 3_600.0)),
        gateway_address: cli.gateway_address.clone(),
        ..ClientConfig::default()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Init {
            authorities,
            insecure_fast_kdf,
        } => {
            if profile_path.exists() {
                bail!("{} exists already", profile_path.display());
            }
            make_parent(&profile_path)?;
            let authorities = authorities
                .iter()
                .map(|a| TrustedAuthority::parse(a))
                .collect::<Result<Vec<_>, _>>()?;
            let pass = passphrase("new passphrase")?;
            if pass.len() < 8 && !insecure_fast_kdf {
                bail!("use a passphrase of at least 8 characters");
            }
            let params = if insecure_fast_kdf {
                Argon2Params::insecure_fast()
            } else {
                Argon2Params::default()
            };
            let profile = runtime.block_on(async {
                eprintln!("fetching the network consensus…");
                let fetcher = fetcher_for(&authorities)?;
                let gateway = pick_gateway(&fetcher).await?;
                anyhow::Ok(Profile::create(
                    &mut rand::rng(),
                    &profile_path,
                    pass.as_bytes(),
                    params,
                    gateway,
                    authorities,
                )?)
            })?;
            println!("profile created at {}", profile_path.display());
            println!("your gateway: {}", hex::encode(profile.gateway.0));
            println!("your contact card (give it to the people who should reach you):");
            println!("{}", profile.card().encode());
            Ok(())
        }
        Command::Contact { command } => {
            let profile = open(&profile_path)?;
            match command {
                ContactCommand::Show => println!("{}", profile.card().encode()),
                ContactCommand::Add { name, card } => {
                    profile.add_contact(&name, &card)?;
                    println!("added {name}");
                }
                ContactCommand::List => {
                    for (_, record) in profile.contacts()? {
                        let state = if record.confirmed {
                            "session established"
                        } else {
                            "no reply yet"
                        };
                        println!("{}\t{state}", record.name);
                    }
                }
            }
            Ok(())
        }
        Command::Send {
            to,
            message,
            timeout,
        } => {
            let profile = open(&profile_path)?;
            let contact = contact_id(&profile, &to)?;
            runtime.block_on(async {
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
                            eprintln!("{}", status_word(status));
                            if matches!(status, MessageStatus::Delivered | MessageStatus::Failed) {
                                outcome = Some(status);
                            }
                        }
                        Ok(Some(Event::Message { name, body, .. })) => {
                            println!("{name}: {}", String::from_utf8_lossy(&body));
                        }
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
            })
        }
        Command::Inbox { wait } => {
            let profile = open(&profile_path)?;
            let profile = runtime.block_on(async {
                let (client, mut events) = Client::start(profile, config).await?;
                let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
                while let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.recv()).await {
                    if let Event::NewContact { name, .. } = event {
                        eprintln!("new contact: {name}");
                    }
                }
                anyhow::Ok(client.shutdown().await?)
            })?;
            let names: std::collections::HashMap<ContactId, String> = profile
                .contacts()?
                .into_iter()
                .map(|(id, r)| (id, r.name))
                .collect();
            for m in profile.messages()? {
                let from = names.get(&m.contact).map_or("?", String::as_str);
                let kind = if m.signal { " (signal)" } else { "" };
                println!(
                    "#{} {from}{kind}: {}",
                    m.seq,
                    String::from_utf8_lossy(&m.body)
                );
            }
            Ok(())
        }
        Command::Chat { with } => {
            let profile = open(&profile_path)?;
            let contact = contact_id(&profile, &with)?;
            runtime.block_on(async {
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
                            Some(Event::Message { name, body, .. }) => {
                                println!("{name}: {}", String::from_utf8_lossy(&body));
                            }
                            Some(Event::Status { local_id, status, .. }) => {
                                eprintln!("[#{} {}]", local_id.0, status_word(status));
                            }
                            Some(_) => {}
                        },
                    }
                }
                client.shutdown().await?;
                anyhow::Ok(())
            })
        }
        Command::Serve => {
            let profile = open(&profile_path)?;
            runtime.block_on(serve(profile, config))
        }
        Command::Backup { command } => match command {
            BackupCommand::Export { file } => {
                let profile = open(&profile_path)?;
                let pass = std::env::var("AEGIS_BACKUP_PASSPHRASE")
                    .or_else(|_| passphrase("backup passphrase"))?;
                let bytes = profile.store().export_backup(pass.as_bytes())?;
                std::fs::write(&file, bytes)
                    .with_context(|| format!("writing {}", file.display()))?;
                println!("backup written to {}", file.display());
                Ok(())
            }
            BackupCommand::Import { file } => {
                if profile_path.exists() {
                    bail!("{} exists already", profile_path.display());
                }
                make_parent(&profile_path)?;
                let bytes =
                    std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                let backup_pass = std::env::var("AEGIS_BACKUP_PASSPHRASE")
                    .or_else(|_| passphrase("backup passphrase"))?;
                let pass = passphrase("passphrase for the restored profile")?;
                Store::import_backup(
                    &profile_path,
                    &bytes,
                    backup_pass.as_bytes(),
                    pass.as_bytes(),
                )?;
                println!("profile restored to {}", profile_path.display());
                Ok(())
            }
        },
    }
}

fn emit(event: &ServeEvent) {
    if let Ok(line) = serde_json::to_string(event) {
        println!("{line}");
    }
}

async fn serve(profile: Profile, config: ClientConfig) -> anyhow::Result<()> {
    let names: std::collections::HashMap<String, ContactId> = profile
        .contacts()?
        .into_iter()
        .map(|(id, r)| (r.name, id))
        .collect();
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
                Some(line) => match serde_json::from_str::<ServeCommand>(&line) {
                    Ok(ServeCommand::Send { to, text }) => match names.get(&to) {
                        Some(&contact) => match client.send(contact, text.into_bytes()).await {
                            Ok(id) => emit(&ServeEvent::Queued { id: id.0, to }),
                            Err(e) => emit(&ServeEvent::Error { message: e.to_string() }),
                        },
                        None => emit(&ServeEvent::Error { message: format!("no contact {to}") }),
                    },
                    Ok(ServeCommand::Stats) => {
                        let s = client.stats().await?;
                        emit(&ServeEvent::Stats {
                            real_sent: s.real_sent,
                            loops_sent: s.loops_sent,
                            drops_sent: s.drops_sent,
                            loops_returned: s.loops_returned,
                            loop_rtt_p50_ms: s.loop_rtt_p50_ms,
                        });
                    }
                    Err(e) => emit(&ServeEvent::Error { message: format!("bad command: {e}") }),
                },
            },
            event = events.recv() => match event {
                None => break,
                Some(Event::Connected { epoch }) => emit(&ServeEvent::Connected { epoch }),
                Some(Event::Status { local_id, status, .. }) => emit(&ServeEvent::Status {
                    id: local_id.0,
                    status: status_word(status).to_owned(),
                }),
                Some(Event::Message { name, body, signal, .. }) => emit(&ServeEvent::Message {
                    from: name,
                    text: String::from_utf8_lossy(&body).into_owned(),
                    signal,
                }),
                Some(Event::NewContact { name, .. }) => emit(&ServeEvent::NewContact { name }),
            },
        }
    }
    client.shutdown().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_goes_where_the_platform_keeps_user_data() {
        let p = |s: &str| Some(PathBuf::from(s));
        let os = |s: &str| Some(std::ffi::OsString::from(s));
        assert_eq!(default_profile(p("/x"), true, None, None), p("/x"));
        assert_eq!(
            default_profile(None, true, None, os("/home/a")),
            p("aegis-profile")
        );
        assert_eq!(
            default_profile(None, false, os("/data"), os("/home/a")),
            p("/data/aegislink/profile")
        );
        // A relative XDG_DATA_HOME is ignored, as the specification says.
        assert_eq!(
            default_profile(None, false, os("rel"), os("/home/a")),
            p("/home/a/.local/share/aegislink/profile")
        );
        assert_eq!(default_profile(None, false, None, None), None);
    }
}
