//! What an endpoint is told and what it tells: recipients' addresses, its
//! own keys, its configuration, the kinds of packet it sends, its events
//! and counters.

use super::*;

/// Where a recipient's packets go: its gateway, its mailbox there, and the
/// key its mailbox packets are sealed to (all from its contact card).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// The recipient's gateway.
    pub gateway: NodeId,
    /// Its mailbox at that gateway.
    pub mailbox: MailboxId,
    /// The key packets to that mailbox are sealed to.
    pub mailbox_key: SphinxPublicKey,
}

/// The client's own attachment: its gateway, mailbox and sealing key.
pub struct Own {
    /// The gateway the client attaches to.
    pub gateway: NodeId,
    /// Its mailbox there.
    pub mailbox: MailboxId,
    /// The secret its mailbox packets are sealed to.
    pub sealing: SphinxSecret,
}

/// How an endpoint runs.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// The longest time between pulls; shortened when the published rates need it.
    pub pull_interval: Duration,
    /// The sending schedule; `None` follows the consensus's λ rates.
    pub shaping: Option<ShapingConfig>,
    /// Build packets ahead of their slots ([`Endpoint::prepare`]); `false`
    /// builds each when its slot comes, so that the emission's cost depends
    /// on its kind (kept to measure that difference, see
    /// `client/benches/emission.rs`).
    pub prepare_ahead: bool,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            pull_interval: Duration::from_secs(1),
            shaping: None,
            prepare_ahead: true,
        }
    }
}

/// What a frame carries. The driver may want it (a benchmark, a local
/// statistic); it is never visible on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PacketKind {
    /// A fragment of a message (or its retransmission).
    Fragment,
    /// An acknowledgement, over a contact's SURB-ACK.
    Ack,
    /// Loop cover.
    Loop,
    /// Drop cover.
    Drop,
}

/// Something the driver should act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointEvent<C> {
    /// A queued message changed status.
    Status(StatusEvent<C>),
    /// A message arrived complete, exactly once; its bytes are still sealed
    /// end to end.
    Message(Vec<u8>),
    /// Keep this mailbox payload (a fragment of an incomplete message) so a
    /// restart can feed it again: the gateway deletes it once acknowledged.
    KeepFragment {
        /// The message it belongs to.
        message_id: [u8; ID_LEN],
        /// Its index.
        index: u16,
        /// The payload as pulled.
        payload: Vec<u8>,
    },
    /// The message is complete: its kept fragments can go.
    ForgetFragments {
        /// The message.
        message_id: [u8; ID_LEN],
    },
}

/// The endpoint's own traffic figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Real packets sent (fragments and acknowledgements).
    pub real_sent: u64,
    /// Loop cover sent.
    pub loops_sent: u64,
    /// Drop cover sent.
    pub drops_sent: u64,
    /// Slots that carried nothing (no route or no key at the time).
    pub skipped: u64,
    /// Fragments delivered again (a mailbox entry served twice) whose
    /// reply block was already used, so they got no second ack.
    pub acks_withheld: u64,
    /// The loops' counts.
    pub loops: LoopStats,
}
