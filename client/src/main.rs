//! `aegis`: the AegisLink command-line client.
//!
//! The passphrase is read from `AEGIS_PASSPHRASE` if set, otherwise from the
//! first line of standard input (at a terminal, without echo).

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aegis_client::api::{Client, ClientConfig, Event, current_topology, fetcher_for};
use aegis_client::control::{self, Reply, Request};
use aegis_client::daemon::Connection;
use aegis_client::profile::Profile;
use aegis_client::safety::SafetyNumber;
use aegis_client::store::{Argon2Params, Store};
use aegis_client::{ContactId, MessageStatus};
use aegis_directory::TrustedAuthority;
use aegis_mix_packet::NodeId;
use aegis_proto::Topology;
use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
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
    /// Create a profile: keys generated here, a mailbox at the gateway you
    /// choose (or one picked at random).
    Init {
        /// A directory authority as URL=HEXKEY (repeat for each).
        #[arg(long = "authority", required = true)]
        authorities: Vec<String>,
        /// The gateway to hold your mailbox: a node id (hex) from the
        /// consensus, or `random`. Choosing a gateway is choosing whom to
        /// trust with when you are online; see `aegis gateways`.
        #[arg(long, default_value = "random")]
        gateway: String,
        /// Use fast (insecure) passphrase hashing; for tests only.
        #[arg(long, hide = true)]
        insecure_fast_kdf: bool,
    },
    /// Move your mailbox to another gateway (with the daemon stopped). Your
    /// contacts get your new card inside your conversations the next time
    /// the client is online; what they send meanwhile is retransmitted to
    /// the new gateway once they have it.
    MoveGateway {
        /// A gateway's node id (hex) from the consensus, or `random` (any
        /// other than the current one).
        #[arg(default_value = "random")]
        gateway: String,
    },
    /// List the gateways of the current consensus (to choose one at init).
    Gateways {
        /// A directory authority as URL=HEXKEY (repeat for each).
        #[arg(long = "authority", required = true)]
        authorities: Vec<String>,
    },
    /// Contacts, contact requests, safety numbers.
    Contact {
        #[command(subcommand)]
        command: ContactCommand,
    },
    /// Send one message. With a daemon running it is queued there and the
    /// command returns at once; otherwise the client goes online and waits
    /// until the message is delivered (or the timeout).
    Send {
        /// The contact's name.
        to: String,
        /// The message.
        message: String,
        /// Without a daemon: give up waiting after this many seconds (the
        /// message stays queued for the next time the client is online).
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Messages you sent and where each stands.
    Status,
    /// Messages to and from your contacts, with their times.
    Inbox {
        /// Only the history with this contact.
        #[arg(long)]
        with: Option<String>,
        /// Without a daemon: seconds to stay online fetching first.
        #[arg(long, default_value_t = 10)]
        wait: u64,
        /// Keep printing what arrives (until Ctrl-C).
        #[arg(long)]
        follow: bool,
    },
    /// Delete a message from the history, or the whole history with a
    /// contact.
    Delete {
        /// The message's number (`#N` in the inbox).
        #[arg(required_unless_present = "with")]
        seq: Option<u64>,
        /// Every message to and from this contact.
        #[arg(long, conflicts_with = "seq")]
        with: Option<String>,
    },
    /// An interactive chat with one contact (type a line to send it).
    Chat {
        /// The contact's name.
        with: String,
    },
    /// Stay online; read JSON requests from stdin, print JSON replies and
    /// events (the control protocol of docs/client.md).
    Serve,
    /// Stay online in the background of your session; the other commands
    /// talk to it over a socket beside the profile that only you can open.
    Daemon,
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
    /// List contacts, contact requests and blocked contacts.
    List,
    /// Accept a contact request (someone who wrote first).
    Accept {
        /// The request's name (`request-…`).
        name: String,
        /// A name to give them.
        #[arg(long = "as")]
        new_name: Option<String>,
    },
    /// Rename a contact.
    Rename {
        /// The current name.
        name: String,
        /// The new name.
        new_name: String,
    },
    /// Remove a contact and your sessions with them (the history stays
    /// until deleted; if they write again they are a contact request).
    Remove {
        /// Their name.
        name: String,
    },
    /// Block a contact or request: what they send is dropped unread.
    Block {
        /// Their name.
        name: String,
    },
    /// Show the safety number with a contact, as digits and a QR code.
    Safety {
        /// Their name.
        name: String,
    },
    /// Mark a contact verified after comparing safety numbers: give the
    /// digits they read out (spaces allowed), or confirm at the prompt.
    Verify {
        /// Their name.
        name: String,
        /// The 60 digits as they read them out.
        digits: Vec<String>,
    },
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

fn contact_id(profile: &Profile, name: &str) -> anyhow::Result<ContactId> {
    Ok(profile
        .contact_by_name(name)?
        .with_context(|| format!("no contact named {name}; add one with `aegis contact add`"))?
        .0)
}

/// A connection to the profile's daemon, if one is running.
async fn daemon(profile: &Path) -> Option<Connection> {
    Connection::open(&control::socket_path(profile)).await
}

/// Answers a request that only needs the profile: through the daemon if
/// one runs (it holds the profile open), else by opening the profile here.
fn ask(
    runtime: &tokio::runtime::Runtime,
    profile: &Path,
    request: Request,
) -> anyhow::Result<Reply> {
    if let Some(mut connection) = runtime.block_on(daemon(profile)) {
        return Ok(runtime.block_on(connection.request(&request))?);
    }
    let opened = open(profile)?;
    control::answer(&opened, &request).context("this request needs the client online")
}

/// Prints a reply for people; an error reply becomes the command's error.
fn print_reply(reply: &Reply) -> anyhow::Result<()> {
    match reply {
        Reply::Error { message } => bail!("{message}"),
        Reply::Ok { done } => println!("{done}"),
        Reply::Card { card } => println!("{card}"),
        Reply::Queued { id, to } => println!("queued #{id} to {to}"),
        Reply::Connected { epoch } => eprintln!("connected (epoch {epoch})"),
        Reply::Status { id, status } => println!("#{id} {status}"),
        Reply::Message {
            from,
            text,
            signal,
            request,
            seq,
        } => {
            let kind = match (signal, request) {
                (true, _) => " (signal)",
                (false, true) => " (request)",
                _ => "",
            };
            println!("#{seq} {from}{kind}: {text}");
        }
        Reply::ContactRequest { name } => {
            println!("contact request from {name} (accept with `aegis contact accept {name}`)");
        }
        Reply::Lagged { missed } => eprintln!("({missed} events missed; see `aegis inbox`)"),
        Reply::Stats {
            real_sent,
            loops_sent,
            drops_sent,
            loops_returned,
            loop_rtt_p50_ms,
            blocked_dropped,
            ..
        } => {
            println!(
                "sent {real_sent} real, {loops_sent} loop and {drops_sent} drop packets; \
                 {loops_returned} loops back{}; {blocked_dropped} messages from blocked contacts dropped",
                loop_rtt_p50_ms.map_or(String::new(), |ms| format!(" (median {ms:.0} ms)"))
            );
        }
        Reply::Contacts { contacts } => {
            if contacts.is_empty() {
                println!("no contacts yet; add one with `aegis contact add NAME CARD`");
            }
            for c in contacts {
                let session = if c.session {
                    "session established"
                } else {
                    "no reply yet"
                };
                let verified = if c.verified {
                    "verified"
                } else {
                    "not verified"
                };
                match c.state.as_str() {
                    "contact" => println!("{}\t{session}, {verified}", c.name),
                    state => println!("{}\t{state}", c.name),
                }
            }
        }
        Reply::Safety {
            name,
            digits,
            verified,
        } => {
            let number = SafetyNumber::from_digits(digits).context("not a safety number")?;
            println!("safety number with {name}:\n\n{}\n", number.grouped());
            print!("{}", number.qr_terminal());
            println!(
                "\n{name} sees the same digits on their side. Compare them in person \
                 (or scan this code), then: aegis contact verify {name} <digits>"
            );
            if *verified {
                println!("{name} is marked verified.");
            }
        }
        Reply::History { messages } => {
            if messages.is_empty() {
                println!("no messages");
            }
            for m in messages {
                let when = utc_minutes(m.time_ms);
                let kind = if m.signal { " (signal)" } else { "" };
                match (&m.direction[..], m.id, &m.status) {
                    ("out", Some(id), Some(status)) => println!(
                        "#{} {when} to {}{kind}: {} [#{id} {status}]",
                        m.seq, m.contact, m.text
                    ),
                    _ => println!("#{} {when} {}{kind}: {}", m.seq, m.contact, m.text),
                }
            }
        }
        Reply::Deleted { count } => println!("{count} deleted"),
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM` (UTC) of a Unix time in milliseconds.
fn utc_minutes(unix_ms: u64) -> String {
    if unix_ms == 0 {
        return "????-??-?? ??:??".into();
    }
    let minutes = unix_ms / 60_000;
    let days = (minutes / 1_440) as i64;
    let (hour, minute) = ((minutes % 1_440) / 60, minutes % 60);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}")
}

fn parse_authorities(authorities: &[String]) -> anyhow::Result<Vec<TrustedAuthority>> {
    Ok(authorities
        .iter()
        .map(|a| TrustedAuthority::parse(a))
        .collect::<Result<Vec<_>, _>>()?)
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
            gateway,
            insecure_fast_kdf,
        } => {
            if profile_path.exists() {
                bail!("{} exists already", profile_path.display());
            }
            make_parent(&profile_path)?;
            let authorities = parse_authorities(&authorities)?;
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
                let topology = current_topology(&fetcher).await?;
                let gateway = choose_gateway(&topology, &gateway)?;
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
        Command::MoveGateway { gateway } => {
            if runtime.block_on(daemon(&profile_path)).is_some() {
                bail!("stop the daemon first (the gateway is where it is attached)");
            }
            let mut profile = open(&profile_path)?;
            let topology = runtime
                .block_on(async { current_topology(&fetcher_for(&profile.authorities)?).await })?;
            let target = if gateway == "random" {
                let others: Vec<NodeId> = topology
                    .gateways
                    .iter()
                    .copied()
                    .filter(|g| *g != profile.gateway)
                    .collect();
                *others
                    .get(rand::random_range(0..others.len().max(1)))
                    .context("the consensus lists no other gateway")?
            } else {
                choose_gateway(&topology, &gateway)?
            };
            profile.move_gateway(target)?;
            println!("your gateway: {}", hex::encode(target.0));
            println!(
                "your contacts get the new card the next time you are online; your card is now:"
            );
            println!("{}", profile.card().encode());
            Ok(())
        }
        Command::Gateways { authorities } => {
            let authorities = parse_authorities(&authorities)?;
            let topology =
                runtime.block_on(async { current_topology(&fetcher_for(&authorities)?).await })?;
            println!("gateways of epoch {}:", topology.epoch);
            for id in &topology.gateways {
                println!("{}", hex::encode(id.0));
            }
            Ok(())
        }
        Command::Contact { command } => {
            let request = match command {
                ContactCommand::Show => Request::Card,
                ContactCommand::Add { name, card } => Request::AddContact { name, card },
                ContactCommand::List => Request::Contacts,
                ContactCommand::Accept { name, new_name } => Request::Accept { name, new_name },
                ContactCommand::Rename { name, new_name } => Request::Rename { name, new_name },
                ContactCommand::Remove { name } => Request::Remove { name },
                ContactCommand::Block { name } => Request::Block { name },
                ContactCommand::Safety { name } => Request::Safety { name },
                ContactCommand::Verify { name, digits } => {
                    let digits = if digits.is_empty() {
                        confirm_safety_number(&runtime, &profile_path, &name)?;
                        None
                    } else {
                        Some(digits.join(""))
                    };
                    Request::Verify { name, digits }
                }
            };
            print_reply(&ask(&runtime, &profile_path, request)?)
        }
        Command::Send {
            to,
            message,
            timeout,
        } => {
            if let Some(mut connection) = runtime.block_on(daemon(&profile_path)) {
                let request = Request::Send {
                    to,
                    text: message,
                    signal: false,
                };
                return print_reply(&runtime.block_on(connection.request(&request))?);
            }
            let profile = open(&profile_path)?;
            let contact = contact_id(&profile, &to)?;
            runtime.block_on(send_online(profile, config, contact, message, timeout))
        }
        Command::Status => {
            let reply = ask(&runtime, &profile_path, Request::History { with: None })?;
            let Reply::History { mut messages } = reply else {
                return print_reply(&reply);
            };
            messages.retain(|m| m.direction == "out");
            print_reply(&Reply::History { messages })?;
            if let Some(mut connection) = runtime.block_on(daemon(&profile_path)) {
                print_reply(&runtime.block_on(connection.request(&Request::Stats))?)?;
            }
            Ok(())
        }
        Command::Inbox { with, wait, follow } => {
            let history = Request::History { with };
            if let Some(mut connection) = runtime.block_on(daemon(&profile_path)) {
                print_reply(&runtime.block_on(connection.request(&history))?)?;
                if follow {
                    runtime.block_on(follow_daemon(connection))?;
                }
                return Ok(());
            }
            let profile = open(&profile_path)?;
            let profile = runtime.block_on(fetch_for(profile, config, wait, follow))?;
            print_reply(&control::answer(&profile, &history).context("history")?)
        }
        Command::Delete { seq, with } => {
            let request = match (seq, with) {
                (_, Some(with)) => Request::DeleteHistory { with },
                (Some(seq), None) => Request::Delete { seq },
                (None, None) => bail!("give a message number or --with NAME"),
            };
            print_reply(&ask(&runtime, &profile_path, request)?)
        }
        Command::Chat { with } => {
            if let Some(connection) = runtime.block_on(daemon(&profile_path)) {
                return runtime.block_on(chat_through_daemon(connection, with));
            }
            let profile = open(&profile_path)?;
            let contact = contact_id(&profile, &with)?;
            runtime.block_on(chat(profile, config, contact))
        }
        Command::Serve => {
            let profile = open(&profile_path)?;
            runtime.block_on(serve(profile, config))
        }
        Command::Daemon => {
            let socket = control::socket_path(&profile_path);
            if runtime.block_on(daemon(&profile_path)).is_some() {
                bail!(
                    "a daemon for this profile is running already ({})",
                    socket.display()
                );
            }
            let profile = open(&profile_path)?;
            runtime.block_on(run_daemon(profile, config, &socket))
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

/// The gateway `choice` names (`random`, or a node id in hex) in the
/// consensus.
fn choose_gateway(topology: &Topology, choice: &str) -> anyhow::Result<NodeId> {
    if choice == "random" {
        return Ok(topology.random_gateway(&mut rand::rng())?);
    }
    let id = hex::decode(choice)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(NodeId)
        .context("--gateway takes `random` or a node id (64 hex digits)")?;
    if !topology.gateways.contains(&id) {
        let known: Vec<String> = topology.gateways.iter().map(|g| hex::encode(g.0)).collect();
        bail!(
            "{choice} is not a gateway of the current consensus; the gateways are:\n{}",
            known.join("\n")
        );
    }
    Ok(id)
}

/// Shows the safety number and asks whether the contact sees the same;
/// an error unless the user says yes (or there is no terminal to ask at).
fn confirm_safety_number(
    runtime: &tokio::runtime::Runtime,
    profile: &Path,
    name: &str,
) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    if !std::io::stdin().is_terminal() {
        bail!("give the digits {name} reads out: aegis contact verify {name} <digits>");
    }
    let reply = ask(
        runtime,
        profile,
        Request::Safety {
            name: name.to_owned(),
        },
    )?;
    print_reply(&reply)?;
    eprint!("Does {name} see exactly these digits? [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        bail!("not verified");
    }
    Ok(())
}

/// Without a daemon: goes online, sends, and waits for the outcome.
async fn send_online(
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
async fn fetch_for(
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
async fn follow_daemon(mut connection: Connection) -> anyhow::Result<()> {
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

async fn chat(profile: Profile, config: ClientConfig, contact: ContactId) -> anyhow::Result<()> {
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
async fn chat_through_daemon(mut connection: Connection, with: String) -> anyhow::Result<()> {
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

fn emit(reply: &Reply) {
    if let Ok(line) = serde_json::to_string(reply) {
        println!("{line}");
    }
}

/// `aegis serve`: the control protocol on standard input and output.
async fn serve(profile: Profile, config: ClientConfig) -> anyhow::Result<()> {
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

/// `aegis daemon`: online until SIGTERM or Ctrl-C, serving the socket.
async fn run_daemon(profile: Profile, config: ClientConfig, socket: &Path) -> anyhow::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_utc_dates() {
        assert_eq!(utc_minutes(1), "1970-01-01 00:00");
        // 1,700,000,000 s after the epoch is 2023-11-14 22:13:20 UTC.
        assert_eq!(utc_minutes(1_700_000_000_000), "2023-11-14 22:13");
        // A leap day.
        assert_eq!(utc_minutes(951_782_400_000), "2000-02-29 00:00");
        assert_eq!(utc_minutes(0), "????-??-?? ??:??");
    }

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
