//! What network a harness runs.

use std::time::Duration;

use aegis_directory::{MixingStrategy, NetworkParameters};
use aegis_proto::OutboxConfig;

/// The network a harness runs.
#[derive(Clone, Debug)]
pub struct HarnessConfig {
    /// Seed of the one RNG every choice draws from.
    pub seed: u64,
    /// Mixes per layer.
    pub width: usize,
    /// Gateways.
    pub gateways: usize,
    /// Clients, attached to gateways in turn.
    pub clients: usize,
    /// The consensus's parameters (rates, mixing, epoch length).
    pub parameters: NetworkParameters,
    /// One-way latency of every link.
    pub link_latency: Duration,
    /// Probability that a link loses a packet (a client's frame to its
    /// gateway, or a frame between nodes), each independently: what a
    /// flaky network or a node dropping under load does. Pulls are answered
    /// over the client's stream and not lost.
    pub link_loss: f64,
    /// Each client's outbox bounds and retries.
    pub outbox: OutboxConfig,
}

impl Default for HarnessConfig {
    fn default() -> Self {
        let mut parameters = NetworkParameters::standard(7 * 24 * 3_600 * 1_000);
        parameters.mixing = MixingStrategy::Poisson {
            mean_delay_ms: 50.0,
        };
        // Low rates keep hours of virtual time to seconds of real time; the
        // schedule's shape, not its rate, is what the tests exercise.
        parameters.lambda_p = 0.5;
        parameters.lambda_l = 0.1;
        parameters.lambda_d = 0.1;
        parameters.lambda_m = 0.02;
        HarnessConfig {
            seed: 1,
            width: 2,
            gateways: 2,
            clients: 2,
            parameters,
            link_latency: Duration::from_millis(20),
            link_loss: 0.0,
            outbox: OutboxConfig::default(),
        }
    }
}

/// Why a harness could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A layer or the gateway list would be empty.
    #[error("every layer needs a mix and the network a gateway and a client")]
    Empty,
    /// The link loss is not a probability.
    #[error("link loss {0} is not between 0 and 1")]
    LinkLoss(f64),
    /// The parameters name a packet geometry this build does not know.
    #[error("the parameters name an unknown packet geometry")]
    UnknownGeometry,
    /// The parameters are out of range.
    #[error(transparent)]
    Parameters(#[from] aegis_directory::ParameterError),
}
