//! Hosts with addresses of their own: one Linux network namespace per host,
//! each joined by a veth pair to one bridge, the way separate machines on
//! one switch would be. The runner keeps the bridge's own address (`.1` of
//! the subnet) and reaches every host from there.
//!
//! Everything is made with `ip` (iproute2) and needs root. Run it only
//! inside a network and mount namespace of the caller's own ([`isolate`]):
//! then the bridge, the namespaces and their mounts vanish with that
//! namespace, even if the runner is killed.

use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::processes::Place;

/// Set in the environment of a program re-run by [`isolate`].
pub const ISOLATED: &str = "AEGIS_TESTKIT_ISOLATED";

/// Whether this process runs in the private namespaces made by [`isolate`].
pub fn isolated() -> bool {
    std::env::var_os(ISOLATED).is_some()
}

/// Runs this program again, with the same arguments, in a new network and
/// mount namespace (loopback up, a private `/run/netns`), and returns its
/// exit code. Needs root and `unshare` (util-linux).
pub fn isolate() -> anyhow::Result<i32> {
    let me = std::env::current_exe().context("locating this program")?;
    let status = Command::new("unshare")
        .args(["--net", "--mount", "--propagation", "private", "--"])
        .arg("sh")
        .arg("-c")
        .arg(
            r#"ip link set lo up && mkdir -p /run/netns && mount -t tmpfs aegis-netns /run/netns && exec "$0" "$@""#,
        )
        .arg(&me)
        .args(std::env::args_os().skip(1))
        .env(ISOLATED, "1")
        .status()
        .context("running `unshare --net --mount` (util-linux; needs root)")?;
    Ok(status.code().unwrap_or(1))
}

/// The bridge every host hangs off.
const BRIDGE: &str = "aegis-br0";

/// A subnet of hosts, each in its own namespace.
pub struct Subnet {
    hosts: Vec<(String, Ipv4Addr)>,
}

impl Subnet {
    /// Makes the bridge (with `.1`) and one namespace per host, named
    /// `aegis-NAME`, with its address. Only inside [`isolate`].
    pub fn create(prefix: [u8; 3], hosts: &[(String, Ipv4Addr)]) -> anyhow::Result<Subnet> {
        if !isolated() {
            bail!("refusing to change network devices outside a namespace of this program's own");
        }
        let [a, b, c] = prefix;
        ip(&["link", "add", BRIDGE, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{a}.{b}.{c}.1/24"), "dev", BRIDGE])?;
        ip(&["link", "set", BRIDGE, "up"])?;
        let subnet = Subnet {
            hosts: hosts.to_vec(),
        };
        for (i, (name, address)) in hosts.iter().enumerate() {
            let namespace = namespace_of(name);
            let outside = format!("aveth{i}");
            ip(&["netns", "add", &namespace])?;
            ip(&[
                "link", "add", &outside, "type", "veth", "peer", "name", "eth0", "netns",
                &namespace,
            ])?;
            ip(&["link", "set", &outside, "master", BRIDGE, "up"])?;
            ip(&[
                "-n",
                &namespace,
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &namespace, "link", "set", "eth0", "up"])?;
            ip(&["-n", &namespace, "link", "set", "lo", "up"])?;
        }
        Ok(subnet)
    }

    /// Where host `name`'s programs run.
    pub fn place(&self, name: &str) -> Place {
        Place::Namespace(namespace_of(name))
    }

    /// Cuts host `name` off the network (its link goes down) or connects
    /// it again: a cable pulled and plugged back.
    pub fn set_connected(&self, name: &str, connected: bool) -> anyhow::Result<()> {
        let index = self
            .hosts
            .iter()
            .position(|(n, _)| n == name)
            .with_context(|| format!("no host {name}"))?;
        let state = if connected { "up" } else { "down" };
        ip(&["link", "set", &format!("aveth{index}"), state])
    }
}

/// The namespace of host `name`.
pub fn namespace_of(name: &str) -> String {
    format!("aegis-{name}")
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !output.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
