//! `aegis`: the AegisLink command-line client.
//!
//! The passphrase is read from `AEGIS_PASSPHRASE` if set, otherwise from the
//! first line of standard input (at a terminal, without echo).

use std::io::{BufRead as _, Write as _};
use std::path::Path;
use std::time::Duration;

use aegis_client::ContactId;
use aegis_client::api::{ClientConfig, current_topology, fetcher_via};
use aegis_client::control::{self, Reply, Request};
use aegis_client::daemon::Connection;
use aegis_client::directory;
use aegis_client::profile::Profile;
use aegis_client::store::{Argon2Params, Store};
use aegis_directory::TrustedAuthority;
use aegis_mix_packet::NodeId;
use aegis_proto::Topology;
use anyhow::{Context as _, bail};
use clap::Parser as _;

/// The command line's parts.
mod cli {
    pub mod args;
    pub mod call;
    pub mod online;
    pub mod output;
    pub mod terminal;
}

use cli::args::{BackupCommand, Cli, Command, ContactCommand};
use cli::call::{Line, Role, call};
use cli::online::{
    Outgoing, chat, chat_through_daemon, fetch_for, follow_daemon, progress_through_daemon,
    reply_online, run_daemon, send_online, serve, serve_through_daemon,
};
use cli::output::print_reply;
use cli::terminal::{make_parent, passphrase, profile_dir};

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
        proxy: cli.socks5.clone(),
        ..ClientConfig::default()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Init {
            authorities,
            gateway,
            insecure_fast_kdf,
            if_missing,
        } => {
            if profile_path.exists() {
                if if_missing {
                    println!("{} exists already; left as it is", profile_path.display());
                    return Ok(());
                }
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
                let fetcher = fetcher_via(&authorities, cli.socks5.as_ref())?;
                let document = directory::current_document(&fetcher).await?;
                // The list the network names, when it differs from the one
                // given (an authority added since, or one moved).
                let authorities =
                    directory::authorities_after(&authorities, &document).unwrap_or(authorities);
                let topology = directory::topology_of(document)?;
                let gateway = choose_gateway(&topology, &gateway)?;
                eprintln!("pinned {} directory authorities", authorities.len());
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
            let topology = runtime.block_on(async {
                current_topology(&fetcher_via(&profile.authorities, cli.socks5.as_ref())?).await
            })?;
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
            let topology = runtime.block_on(async {
                current_topology(&fetcher_via(&authorities, cli.socks5.as_ref())?).await
            })?;
            println!("gateways of epoch {}:", topology.epoch);
            for id in &topology.gateways {
                println!("{}", hex::encode(id.0));
            }
            Ok(())
        }
        Command::Contact {
            command: ContactCommand::Show { json: true },
        } => {
            let reply = ask(&runtime, &profile_path, Request::Card)?;
            let Reply::Card { card } = reply else {
                return print_reply(&reply);
            };
            let gateway = aegis_client::card::ContactCard::decode(&card)
                .context("the profile's own card")?
                .gateway;
            let shown = serde_json::json!({ "card": card, "gateway": hex::encode(gateway.0) });
            println!("{shown}");
            Ok(())
        }
        Command::Contact { command } => {
            let request = match command {
                ContactCommand::Show { .. } => Request::Card,
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
            file,
            media_type,
            detach,
            anonymous,
            timeout,
        } => {
            if let Some(mut connection) = runtime.block_on(daemon(&profile_path)) {
                let request = match file {
                    Some(path) => Request::SendFile {
                        to,
                        path: std::path::absolute(&path)?,
                        name: None,
                        media_type,
                    },
                    None => Request::Send {
                        to,
                        text: message.unwrap_or_default(),
                        anonymous,
                    },
                };
                let is_file = matches!(request, Request::SendFile { .. });
                let reply = runtime.block_on(connection.request(&request))?;
                print_reply(&reply)?;
                return match reply {
                    Reply::Queued { id, .. } if is_file && !detach => {
                        runtime.block_on(progress_through_daemon(&mut connection, id))
                    }
                    _ => Ok(()),
                };
            }
            let outgoing = match file {
                Some(path) => Outgoing::file(&path, media_type.as_deref())?,
                None if anonymous => Outgoing::Anonymous(message.unwrap_or_default()),
                None => Outgoing::Text(message.unwrap_or_default()),
            };
            let profile = open(&profile_path)?;
            let contact = contact_id(&profile, &to)?;
            runtime.block_on(send_online(profile, config, contact, outgoing, timeout))
        }
        Command::Call {
            name,
            answer,
            hold,
            wait,
        } => {
            let role = match (answer, name) {
                (true, from) => Role::Callee {
                    from,
                    wait: Duration::from_secs(wait),
                },
                (false, Some(to)) => Role::Caller {
                    to,
                    hold: hold.map(|s| Duration::from_secs_f64(s.clamp(0.0, 86_400.0))),
                },
                (false, None) => bail!("whom to call?"),
            };
            runtime.block_on(async {
                let line = match daemon(&profile_path).await {
                    Some(connection) => Line::daemon(connection).await?,
                    None => Line::local(open(&profile_path)?, config).await?,
                };
                call(line, role).await
            })
        }
        Command::Reply { seq, message } => {
            if let Some(mut connection) = runtime.block_on(daemon(&profile_path)) {
                let request = Request::Reply { seq, text: message };
                return print_reply(&runtime.block_on(connection.request(&request))?);
            }
            // Without a daemon: online until the answer is delivered.
            let profile = open(&profile_path)?;
            runtime.block_on(reply_online(profile, config, seq, message))
        }
        Command::Save { seq, path } => {
            let path = std::path::absolute(path.unwrap_or_else(|| ".".into()))?;
            print_reply(&ask(&runtime, &profile_path, Request::Save { seq, path })?)
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
            if let Some(connection) = runtime.block_on(daemon(&profile_path)) {
                return runtime.block_on(serve_through_daemon(connection));
            }
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
