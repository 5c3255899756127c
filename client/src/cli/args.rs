//! The command line: every command and its options.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "aegis",
    version,
    about = "AegisLink client: private messages through a mixnet"
)]
pub(crate) struct Cli {
    /// The profile directory (default: `aegislink/profile` in the
    /// platform's data directory, `$XDG_DATA_HOME` or `~/.local/share`; an
    /// `aegis-profile` folder in the current directory, the old default, is
    /// still used if it exists).
    #[arg(long, global = true, env = "AEGIS_PROFILE")]
    pub(crate) profile: Option<PathBuf>,
    /// Seconds between mailbox pulls.
    #[arg(long, global = true, default_value_t = 1.0)]
    pub(crate) pull_interval: f64,
    /// Reach your gateway at this libp2p address instead of the published
    /// one (e.g. through a tunnel); its identity is still checked.
    #[arg(long, global = true, value_name = "MULTIADDR")]
    pub(crate) gateway_address: Option<aegis_link::Multiaddr>,
    /// Reach your gateway through this SOCKS5 proxy, `IP:PORT` or
    /// `USER:PASSWORD@IP:PORT` (Tor: 127.0.0.1:9050), so it sees the
    /// proxy's address instead of yours.
    #[arg(long, global = true, env = "AEGIS_SOCKS5", value_name = "PROXY", value_parser = aegis_link::Socks5Proxy::parse)]
    pub(crate) socks5: Option<aegis_link::Socks5Proxy>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
        /// Do nothing (and succeed) if the profile exists already, as a
        /// container's first-start step wants.
        #[arg(long)]
        if_missing: bool,
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
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        message: Option<String>,
        /// Send this file instead (its name and type go with it); a
        /// progress bar follows its fragments until it is delivered.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// The file's media type (guessed from its extension if not given).
        #[arg(long = "type", value_name = "MEDIA_TYPE", requires = "file")]
        media_type: Option<String>,
        /// With a daemon: return once the file is queued, without the
        /// progress bar.
        #[arg(long, requires = "file")]
        detach: bool,
        /// Write anonymously: they learn neither who you are nor where your
        /// mailbox is, and can answer (`aegis reply`) for a while.
        #[arg(long, conflicts_with = "file")]
        anonymous: bool,
        /// Without a daemon: give up waiting after this many seconds (the
        /// message stays queued for the next time the client is online).
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Call a contact, or answer a call. Only the call's signalling
    /// travels (offer, answer, candidates, hang-up), sealed like messages;
    /// no audio or video flows through the mixnet.
    Call {
        /// Whom to call (with --answer: whose call to take; anyone's if
        /// not given).
        #[arg(required_unless_present = "answer")]
        name: Option<String>,
        /// Wait for a call and answer it.
        #[arg(long)]
        answer: bool,
        /// Hang up this many seconds after connecting (otherwise when they
        /// hang up, or at Ctrl-C).
        #[arg(long, value_name = "SECONDS")]
        hold: Option<f64>,
        /// With --answer: seconds to wait for a call.
        #[arg(long, default_value_t = 300)]
        wait: u64,
    },
    /// Messages you sent and where each stands.
    Status,
    /// Answer an anonymous message (`#N` in the inbox) over the reply
    /// blocks it brought.
    Reply {
        /// The anonymous message's number.
        seq: u64,
        /// The answer.
        message: String,
    },
    /// Write a file from the history (`#N` in the inbox) to disk; never
    /// overwrites.
    Save {
        /// The message's number.
        seq: u64,
        /// A folder (the file keeps its name) or a file path; the current
        /// folder if not given.
        path: Option<PathBuf>,
    },
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
pub(crate) enum ContactCommand {
    /// Print your contact card.
    Show {
        /// Print it as JSON with the gateway it names (`card`, `gateway`),
        /// for scripts and tools.
        #[arg(long)]
        json: bool,
    },
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
pub(crate) enum BackupCommand {
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
