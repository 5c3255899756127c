//! What the commands print: replies for people, and JSON lines for
//! programs.

use aegis_client::control::Reply;
use aegis_client::safety::SafetyNumber;
use anyhow::{Context as _, bail};

/// Prints a reply for people; an error reply becomes the command's error.
pub(crate) fn print_reply(reply: &Reply) -> anyhow::Result<()> {
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
pub(crate) fn utc_minutes(unix_ms: u64) -> String {
    if unix_ms == 0 {
        return "????-??-?? ??:??".into();
    }
    let (year, month, day, hour, minute, _) = aegis_directory::api::utc_fields(unix_ms);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}")
}

/// One reply as a JSON line on standard output (`aegis serve`).
pub(crate) fn emit(reply: &Reply) {
    if let Ok(line) = serde_json::to_string(reply) {
        println!("{line}");
    }
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
}
