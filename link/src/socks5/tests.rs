//! The SOCKS5 client: byte for byte against a scripted proxy, every
//! failure named, and through microsocks (a SOCKS5 server written
//! elsewhere, Debian's `microsocks`), whose outgoing connections leave
//! from an address of their own so the far side's view can be checked.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Stdio;

use tokio::net::TcpListener;

use super::*;

/// A proxy that expects `greeting` (and `login`), answers with
/// `method_reply` (and `login_reply`), expects `request` and answers
/// `reply`, then echoes.
async fn scripted(
    expect: Vec<Vec<u8>>,
    answers: Vec<Vec<u8>>,
) -> (SocketAddr, tokio::task::JoinHandle<Vec<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        for (want, answer) in expect.iter().zip(&answers) {
            let mut got = vec![0u8; want.len()];
            if stream.read_exact(&mut got).await.is_err() {
                return seen;
            }
            seen.push(got);
            stream.write_all(answer).await.unwrap();
        }
        let mut buf = [0u8; 64];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        seen
    });
    (address, task)
}

fn proxy(address: SocketAddr, credentials: Option<(&str, &str)>) -> Socks5Proxy {
    Socks5Proxy {
        address,
        credentials: credentials.map(|(u, p)| (u.to_owned(), p.to_owned())),
    }
}

#[tokio::test]
async fn connect_speaks_rfc_1928_and_1929_byte_for_byte() {
    let target = Target::Ip(SocketAddr::new(Ipv4Addr::new(192, 0, 2, 7).into(), 9001));
    let login = b"\x01\x05alice\x06secret".to_vec();
    let (address, proxy_task) = scripted(
        vec![
            vec![5, 2, 0, 2],
            login.clone(),
            vec![5, 1, 0, 1, 192, 0, 2, 7, 0x23, 0x29],
        ],
        vec![
            vec![5, 2],
            vec![1, 0],
            // Bound address as a name: skipped whatever its length.
            b"\x05\x00\x00\x03\x09proxy.lan\x04\xd2".to_vec(),
        ],
    )
    .await;
    let mut stream = connect(&proxy(address, Some(("alice", "secret"))), &target)
        .await
        .unwrap();
    stream.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    stream.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"ping", "the stream carries the peer's bytes");
    drop(stream);
    let seen = proxy_task.await.unwrap();
    assert_eq!(seen[1], login);

    // IPv6 and host names, without a login.
    let v6 = Target::Ip(SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 443));
    let mut want = vec![5, 1, 0, 4];
    want.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    want.extend_from_slice(&443u16.to_be_bytes());
    assert_eq!(request(&v6), want);
    let name = Target::Name("gw.example".into(), 80);
    assert_eq!(
        request(&name),
        b"\x05\x01\x00\x03\x0agw.example\x00\x50".to_vec()
    );
}

#[tokio::test]
async fn every_refusal_is_named() {
    let target = Target::Name("gw.example".into(), 80);
    let greeting = vec![5, 1, 0];
    let connect_request = request(&target);
    // The proxy could not connect on: its reason is passed on.
    for (code, why) in [
        (1, "general failure"),
        (5, "connection refused"),
        (4, "host unreachable"),
    ] {
        let (address, _) = scripted(
            vec![greeting.clone(), connect_request.clone()],
            vec![vec![5, 0], vec![5, code, 0, 1, 0, 0, 0, 0, 0, 0]],
        )
        .await;
        let error = connect(&proxy(address, None), &target).await.unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains(why) && text.contains("gw.example:80"),
            "{text}"
        );
    }
    // It wants a login we did not give.
    let (address, _) = scripted(vec![greeting.clone()], vec![vec![5, 0xff]]).await;
    let error = connect(&proxy(address, None), &target).await.unwrap_err();
    assert!(matches!(error, Socks5Error::NoMethod(_)), "{error}");
    // It refuses the login.
    let (address, _) = scripted(
        vec![vec![5, 2, 0, 2], b"\x01\x01u\x01p".to_vec()],
        vec![vec![5, 2], vec![1, 1]],
    )
    .await;
    let error = connect(&proxy(address, Some(("u", "p"))), &target)
        .await
        .unwrap_err();
    assert!(matches!(error, Socks5Error::Login(_)), "{error}");
    // It is not a SOCKS5 proxy at all (an HTTP server, say).
    let (address, _) = scripted(vec![greeting.clone()], vec![b"HT".to_vec()]).await;
    let error = connect(&proxy(address, None), &target).await.unwrap_err();
    assert!(matches!(error, Socks5Error::Protocol(_)), "{error}");
    // Nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let error = connect(&proxy(address, None), &target).await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains(&address.to_string()) && text.contains("Tor"),
        "{text}"
    );
}

#[test]
fn proxies_and_targets_parse_as_people_write_them() {
    let p = Socks5Proxy::parse("127.0.0.1:9050").unwrap();
    assert_eq!((p.address.port(), p.credentials), (9050, None));
    let p = Socks5Proxy::parse("me:pw@[::1]:1080").unwrap();
    assert_eq!(p.credentials, Some(("me".into(), "pw".into())));
    assert!(
        !format!("{p:?}").contains("pw"),
        "no password in debug output"
    );
    for bad in [
        "localhost:9050",
        "127.0.0.1",
        ":pw@127.0.0.1:1",
        "nocolon@127.0.0.1:1",
    ] {
        assert!(Socks5Proxy::parse(bad).is_err(), "{bad}");
    }
    let of = |s: &str| Target::of(&s.parse().unwrap());
    assert_eq!(
        of("/ip4/10.0.0.1/tcp/7000"),
        Some(Target::Ip("10.0.0.1:7000".parse().unwrap()))
    );
    assert_eq!(
        of("/dns4/gw.example/tcp/7000"),
        Some(Target::Name("gw.example".into(), 7000))
    );
    let with_peer = "/ip6/::1/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
    assert!(of(with_peer).is_some());
    assert_eq!(of("/ip4/10.0.0.1/udp/7000"), None);
    assert_eq!(of("/ip4/10.0.0.1/tcp/1/ws"), None);
}

/// A port free on 127.0.0.1 a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// microsocks on 127.0.0.1, its outgoing connections leaving from
/// 127.0.0.2, with a login if given. Killed when dropped.
async fn microsocks(login: Option<(&str, &str)>) -> (tokio::process::Child, SocketAddr) {
    let port = free_port();
    let mut command = tokio::process::Command::new("microsocks");
    command
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-b",
            "127.0.0.2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    if let Some((user, password)) = login {
        command.args(["-u", user, "-P", password]);
    }
    let child = command
        .spawn()
        .expect("microsocks (Debian's microsocks package; scripts/prerequisites.sh installs it)");
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..100 {
        if TcpStream::connect(address).await.is_ok() {
            return (child, address);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("microsocks did not start on {address}");
}

#[tokio::test]
async fn through_microsocks_the_far_side_sees_only_the_proxys_address() {
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = Target::Ip(server.local_addr().unwrap());
    let accept = tokio::spawn(async move {
        let mut peers = Vec::new();
        for _ in 0..2 {
            let (mut stream, peer) = server.accept().await.unwrap();
            let mut buf = [0u8; 5];
            stream.read_exact(&mut buf).await.unwrap();
            stream.write_all(&buf).await.unwrap();
            peers.push(peer.ip());
        }
        peers
    });
    for login in [None, Some(("aegis", "isolation-1"))] {
        let (_proxy, address) = microsocks(login).await;
        let mut stream = connect(&proxy(address, login), &target).await.unwrap();
        stream.write_all(b"hello").await.unwrap();
        let mut echo = [0u8; 5];
        stream.read_exact(&mut echo).await.unwrap();
        assert_eq!(&echo, b"hello");
    }
    let peers = accept.await.unwrap();
    assert_eq!(
        peers,
        vec![IpAddr::from([127, 0, 0, 2]); 2],
        "seen: {peers:?}"
    );

    // A wrong login, and a target no one listens on, are named.
    let (_proxy, address) = microsocks(Some(("aegis", "right"))).await;
    let error = connect(&proxy(address, Some(("aegis", "wrong"))), &target)
        .await
        .unwrap_err();
    assert!(matches!(error, Socks5Error::Login(_)), "{error}");
    let (_proxy, address) = microsocks(None).await;
    let nowhere = Target::Ip(SocketAddr::from(([127, 0, 0, 1], free_port())));
    let error = connect(&proxy(address, None), &nowhere).await.unwrap_err();
    assert!(matches!(error, Socks5Error::Refused { .. }), "{error}");
}
