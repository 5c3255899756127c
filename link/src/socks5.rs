//! Reaching peers through a SOCKS5 proxy (RFC 1928, with RFC 1929's
//! username and password), such as a local Tor daemon's `SocksPort`.
//!
//! A client whose [`Host`](crate::Host) is started with a proxy has no
//! other transport: every connection goes to the proxy, which connects on
//! to the peer, so the peer (the client's gateway) sees the proxy's exit
//! address, never the client's. Noise and yamux run over the proxied
//! stream as over plain TCP, and the peer's identity is still checked.
//! Host names (`/dns/…`) are passed to the proxy to resolve, so no name
//! lookup leaves the machine outside it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use libp2p::core::transport::{DialOpts, ListenerId, TransportError, TransportEvent};
use libp2p::core::{Multiaddr, Transport};
use libp2p::multiaddr::Protocol;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long the proxy may take to connect us (Tor builds a circuit first).
pub const PROXY_TIMEOUT: Duration = Duration::from_secs(60);

/// A SOCKS5 proxy and, optionally, the username and password it wants
/// (Tor takes any pair and keeps streams with different pairs on
/// different circuits).
#[derive(Clone, PartialEq, Eq)]
pub struct Socks5Proxy {
    /// Where the proxy listens.
    pub address: SocketAddr,
    /// Username and password (each 1–255 bytes), if the proxy asks.
    pub credentials: Option<(String, String)>,
}

impl fmt::Debug for Socks5Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socks5Proxy")
            .field("address", &self.address)
            .field("credentials", &self.credentials.as_ref().map(|_| "…"))
            .finish()
    }
}

impl Socks5Proxy {
    /// Parses `HOST:PORT` or `USER:PASSWORD@HOST:PORT` (an IP address, as
    /// a proxy is reached without a name lookup).
    pub fn parse(text: &str) -> Result<Socks5Proxy, String> {
        let (credentials, address) = match text.rsplit_once('@') {
            Some((auth, address)) => {
                let (user, password) = auth
                    .split_once(':')
                    .ok_or("credentials are USER:PASSWORD before the @")?;
                let ok = |s: &str| (1..=255).contains(&s.len());
                if !ok(user) || !ok(password) {
                    return Err("a SOCKS5 username and password are 1 to 255 bytes each".into());
                }
                (Some((user.to_owned(), password.to_owned())), address)
            }
            None => (None, text),
        };
        let address = address
            .parse()
            .map_err(|_| format!("{address:?} is not IP:PORT (for Tor: 127.0.0.1:9050)"))?;
        Ok(Socks5Proxy {
            address,
            credentials,
        })
    }
}

/// Where to connect through the proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// An IP address and port.
    Ip(SocketAddr),
    /// A host name (resolved by the proxy) and port.
    Name(String, u16),
}

impl Target {
    /// The target a libp2p TCP address names (`/ip4|ip6|dns|dns4|dns6/…/tcp/…`,
    /// optionally followed by `/p2p/…`).
    pub fn of(address: &Multiaddr) -> Option<Target> {
        let mut parts = address.iter();
        let host = parts.next()?;
        let Some(Protocol::Tcp(port)) = parts.next() else {
            return None;
        };
        if !parts.all(|p| matches!(p, Protocol::P2p(_))) {
            return None;
        }
        match host {
            Protocol::Ip4(ip) => Some(Target::Ip(SocketAddr::new(IpAddr::V4(ip), port))),
            Protocol::Ip6(ip) => Some(Target::Ip(SocketAddr::new(IpAddr::V6(ip), port))),
            Protocol::Dns(name) | Protocol::Dns4(name) | Protocol::Dns6(name)
                if (1..=255).contains(&name.len()) =>
            {
                Some(Target::Name(name.to_string(), port))
            }
            _ => None,
        }
    }
}

/// Why the proxy did not connect us.
#[derive(Debug, thiserror::Error)]
pub enum Socks5Error {
    /// The proxy could not be reached or the connection broke.
    #[error("SOCKS5 proxy {proxy}: {error} (is the proxy, e.g. Tor, running there?)")]
    Io {
        /// The proxy.
        proxy: SocketAddr,
        /// What failed.
        error: std::io::Error,
    },
    /// The proxy said something that is not SOCKS5.
    #[error("SOCKS5 proxy {0}: not a SOCKS5 answer")]
    Protocol(SocketAddr),
    /// The proxy wants an authentication we do not offer.
    #[error(
        "SOCKS5 proxy {0}: it accepts none of our authentication methods (give USER:PASSWORD@ if it needs a login)"
    )]
    NoMethod(SocketAddr),
    /// The proxy refused the username and password.
    #[error("SOCKS5 proxy {0}: the username and password were refused")]
    Login(SocketAddr),
    /// The proxy could not connect on (RFC 1928's reply codes).
    #[error("SOCKS5 proxy {proxy} could not reach {target}: {reason}")]
    Refused {
        /// The proxy.
        proxy: SocketAddr,
        /// The target, as asked.
        target: String,
        /// The proxy's reason.
        reason: &'static str,
    },
    /// The proxy took longer than [`PROXY_TIMEOUT`].
    #[error("SOCKS5 proxy {0}: no connection within {PROXY_TIMEOUT:?}")]
    Timeout(SocketAddr),
}

/// RFC 1928's reply codes, for people.
fn reason(code: u8) -> &'static str {
    match code {
        1 => "general failure",
        2 => "not allowed by the proxy's rules",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unknown reply code",
    }
}

/// Connects to `target` through `proxy`: the stream, past the proxy's
/// reply, carries the peer's bytes.
pub async fn connect(proxy: &Socks5Proxy, target: &Target) -> Result<TcpStream, Socks5Error> {
    let at = proxy.address;
    tokio::time::timeout(PROXY_TIMEOUT, handshake(proxy, target))
        .await
        .map_err(|_| Socks5Error::Timeout(at))?
}

async fn handshake(proxy: &Socks5Proxy, target: &Target) -> Result<TcpStream, Socks5Error> {
    let at = proxy.address;
    let io = |error| Socks5Error::Io { proxy: at, error };
    let mut stream = TcpStream::connect(at).await.map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    // Greeting: no authentication, and a login if we have one (Tor then
    // takes the login, which keeps our streams on circuits of their own).
    let greeting: &[u8] = match proxy.credentials {
        Some(_) => &[5, 2, 0, 2],
        None => &[5, 1, 0],
    };
    stream.write_all(greeting).await.map_err(io)?;
    let mut chosen = [0u8; 2];
    stream.read_exact(&mut chosen).await.map_err(io)?;
    let login = match (chosen, &proxy.credentials) {
        ([5, 0], _) => None,
        ([5, 2], Some(credentials)) => Some(credentials),
        ([5, 0xff], _) => return Err(Socks5Error::NoMethod(at)),
        _ => return Err(Socks5Error::Protocol(at)),
    };
    if let Some((user, password)) = login {
        let mut login = vec![1, user.len() as u8];
        login.extend_from_slice(user.as_bytes());
        login.push(password.len() as u8);
        login.extend_from_slice(password.as_bytes());
        stream.write_all(&login).await.map_err(io)?;
        let mut status = [0u8; 2];
        stream.read_exact(&mut status).await.map_err(io)?;
        match status {
            [1, 0] => {}
            [1, _] => return Err(Socks5Error::Login(at)),
            _ => return Err(Socks5Error::Protocol(at)),
        }
    }
    stream.write_all(&request(target)).await.map_err(io)?;
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).await.map_err(io)?;
    if head[0] != 5 || head[2] != 0 {
        return Err(Socks5Error::Protocol(at));
    }
    if head[1] != 0 {
        return Err(Socks5Error::Refused {
            proxy: at,
            target: match target {
                Target::Ip(address) => address.to_string(),
                Target::Name(name, port) => format!("{name}:{port}"),
            },
            reason: reason(head[1]),
        });
    }
    // The address the proxy bound: skipped.
    let bound = match head[3] {
        1 => 4,
        4 => 16,
        3 => usize::from(stream.read_u8().await.map_err(io)?),
        _ => return Err(Socks5Error::Protocol(at)),
    };
    let mut skip = vec![0u8; bound + 2];
    stream.read_exact(&mut skip).await.map_err(io)?;
    Ok(stream)
}

/// The CONNECT request for `target`.
fn request(target: &Target) -> Vec<u8> {
    let mut out = vec![5, 1, 0];
    let port = match target {
        Target::Ip(SocketAddr::V4(a)) => {
            out.push(1);
            out.extend_from_slice(&a.ip().octets());
            a.port()
        }
        Target::Ip(SocketAddr::V6(a)) => {
            out.push(4);
            out.extend_from_slice(&a.ip().octets());
            a.port()
        }
        Target::Name(name, port) => {
            // At most 255 bytes: `Target::of` takes no longer name.
            out.push(3);
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
            *port
        }
    };
    out.extend_from_slice(&port.to_be_bytes());
    out
}

/// A libp2p transport that dials every TCP address through a SOCKS5 proxy
/// and never listens.
pub struct Socks5Transport {
    proxy: Socks5Proxy,
}

impl Socks5Transport {
    /// Dials through `proxy`.
    pub fn new(proxy: Socks5Proxy) -> Socks5Transport {
        Socks5Transport { proxy }
    }
}

impl Transport for Socks5Transport {
    type Output = libp2p::tcp::tokio::TcpStream;
    type Error = std::io::Error;
    type ListenerUpgrade = futures::future::Pending<Result<Self::Output, Self::Error>>;
    type Dial = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn listen_on(
        &mut self,
        _id: ListenerId,
        address: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        Err(TransportError::MultiaddrNotSupported(address))
    }

    fn remove_listener(&mut self, _id: ListenerId) -> bool {
        false
    }

    fn dial(
        &mut self,
        address: Multiaddr,
        _opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        let Some(target) = Target::of(&address) else {
            return Err(TransportError::MultiaddrNotSupported(address));
        };
        let proxy = self.proxy.clone();
        Ok(Box::pin(async move {
            connect(&proxy, &target)
                .await
                .map(libp2p::tcp::tokio::TcpStream)
                .map_err(std::io::Error::other)
        }))
    }

    fn poll(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests;
