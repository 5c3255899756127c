//! What the commands print: replies for people, and JSON lines for
//! programs.

use aegis_client::control::{FileView, Reply};
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
            request,
            seq,
            file,
            thread,
            anonymous,
        } => {
            let kind = match (request, anonymous, thread.is_some()) {
                (true, _, _) => " (request)",
                (_, true, _) => " (anonymous; answer with `aegis reply`)",
                (_, false, true) => " (reply to your anonymous message)",
                _ => "",
            };
            match file {
                Some(file) => println!("#{seq} {from}{kind}: {}", file_line(*seq, file)),
                None => println!("#{seq} {from}{kind}: {text}"),
            }
        }
        Reply::Call {
            with,
            state,
            candidate,
            reason,
            by_them,
            ..
        } => match state.as_str() {
            "ringing" => println!("call from {with}"),
            "offering" => println!("calling {with}"),
            "connected" => println!("connected"),
            "candidate" => println!(
                "candidate from {with}: {}",
                candidate.as_deref().unwrap_or("")
            ),
            "ended" => match (reason.as_deref(), by_them) {
                (Some("hung up"), Some(true)) => println!("call ended (hung up by {with})"),
                (Some(reason), _) => println!("call ended ({reason})"),
                _ => println!("call ended"),
            },
            other => println!("call {other}"),
        },
        Reply::Progress {
            id,
            status,
            fragments,
            sent,
            acknowledged,
        } => println!(
            "#{id} {status}: {}",
            progress_bar(*acknowledged, *sent, *fragments)
        ),
        Reply::Saved { path, bytes } => {
            println!("saved {} ({})", path.display(), size(*bytes));
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
                let kind = match (m.signal, m.anonymous, m.thread.is_some(), &m.direction[..]) {
                    (true, ..) => " (signal)",
                    (_, true, _, "in") => " (anonymous; answer with `aegis reply`)",
                    (_, false, true, "out") => " (anonymously)",
                    (_, false, true, _) => " (reply to your anonymous message)",
                    _ => "",
                };
                let text = match &m.file {
                    Some(file) => file_line(m.seq, file),
                    None => m.text.clone(),
                };
                match (&m.direction[..], m.id, &m.status) {
                    ("out", Some(id), Some(status)) => println!(
                        "#{} {when} to {}{kind}: {text} [#{id} {status}]",
                        m.seq, m.contact
                    ),
                    _ => println!("#{} {when} {}{kind}: {text}", m.seq, m.contact),
                }
            }
        }
        Reply::Deleted { count } => println!("{count} deleted"),
    }
    Ok(())
}

/// How a file shows in the history: name, type, size, and how to save it.
fn file_line(seq: u64, file: &FileView) -> String {
    format!(
        "[file {} ({}, {}); aegis save {seq} DIR]",
        file.name,
        file.media_type,
        size(file.bytes)
    )
}

/// A byte count for people.
pub(crate) fn size(bytes: usize) -> String {
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.1} kB", bytes as f64 / 1e3),
        _ => format!("{:.2} MB", bytes as f64 / 1e6),
    }
}

/// `[#######-------------] 35 % (245 of 700 fragments acknowledged, 400 sent)`.
pub(crate) fn progress_bar(acknowledged: usize, sent: usize, fragments: usize) -> String {
    const WIDTH: usize = 24;
    let fragments = fragments.max(1);
    let filled = (acknowledged.min(fragments) * WIDTH) / fragments;
    format!(
        "[{}{}] {:3} % ({acknowledged} of {fragments} fragments acknowledged, {sent} sent)",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled),
        acknowledged * 100 / fragments,
    )
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

    #[test]
    fn progress_bars_and_sizes_read_right() {
        assert_eq!(
            progress_bar(0, 0, 4),
            "[------------------------]   0 % (0 of 4 fragments acknowledged, 0 sent)"
        );
        assert_eq!(
            progress_bar(2, 3, 4),
            "[############------------]  50 % (2 of 4 fragments acknowledged, 3 sent)"
        );
        assert!(progress_bar(4, 4, 4).starts_with("[########################] 100 %"));
        assert_eq!(size(999), "999 B");
        assert_eq!(size(1_500), "1.5 kB");
        assert_eq!(size(1_048_576), "1.05 MB");
    }
}
