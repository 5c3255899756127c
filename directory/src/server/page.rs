//! The network status page: the current consensus as people read it — the
//! epoch and its window, the parameters every client and node follows,
//! each layer's mixes and the gateways (identity, addresses, version), and
//! which authorities signed. Everything on it is in the public document;
//! nothing about clients is known here to show. The page is plain HTML with
//! inline style and no script, served under a policy that loads nothing
//! else.

use std::fmt::Write as _;

use crate::consensus::SignedConsensus;
use crate::descriptor::SignedDescriptor;
use crate::{MixingStrategy, Role};

/// An authority as the page names it.
pub struct Signer {
    /// Its name in this authority's configuration.
    pub name: String,
    /// Its public key.
    pub key: [u8; 32],
}

/// What the page shows besides the document.
pub struct PageContext<'a> {
    /// This authority's name.
    pub name: &'a str,
    /// Every authority of the network, this one included.
    pub authorities: &'a [Signer],
    /// Signatures a document needs.
    pub threshold: usize,
    /// The epoch by this authority's clock.
    pub epoch: u64,
}

/// Escapes text for HTML.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A time as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc(unix_ms: u64) -> String {
    let (year, month, day, h, m, s) = crate::api::utc_fields(unix_ms);
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02} UTC")
}

fn mixing(strategy: &MixingStrategy) -> String {
    match strategy {
        MixingStrategy::Poisson { mean_delay_ms } => {
            format!("Poisson mixing, mean delay {mean_delay_ms} ms per hop")
        }
        MixingStrategy::TimedPool {
            interval_ms,
            min_pool,
            fraction,
        } => format!(
            "timed pool: every {interval_ms} ms, {min_pool} kept, {fraction} of the rest sent"
        ),
        MixingStrategy::ThresholdPool { threshold } => {
            format!("threshold pool: flushed at {threshold} packets")
        }
    }
}

fn nodes_table(out: &mut String, title: &str, nodes: &[SignedDescriptor]) {
    let _ = write!(
        out,
        "<h3>{} <small>({})</small></h3>\n<table class=\"nodes\" data-group=\"{}\">\n\
         <tr><th>identity</th><th>role</th><th>addresses</th><th>version</th></tr>\n",
        esc(title),
        nodes.len(),
        esc(title)
    );
    for node in nodes {
        let role = match node.body.role {
            Role::Mix => "mix",
            Role::Gateway => "gateway",
        };
        let _ = writeln!(
            out,
            "<tr><td class=\"id\" title=\"{id}\">{short}…</td><td>{role}</td><td>{addrs}</td><td>{version}</td></tr>",
            id = hex::encode(node.identity()),
            short = &hex::encode(node.identity())[..16],
            addrs = node
                .body
                .addresses
                .iter()
                .map(|a| esc(a))
                .collect::<Vec<_>>()
                .join("<br>"),
            version = esc(&node.body.version),
        );
    }
    out.push_str("</table>\n");
}

/// The page for `document` (the current one, if any).
pub fn render(context: &PageContext<'_>, document: Option<&SignedConsensus>) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <meta http-equiv=\"refresh\" content=\"30\">\
         <title>AegisLink network status</title>\n<style>\
         body{{font-family:sans-serif;margin:2em;max-width:70em}}\
         table{{border-collapse:collapse;margin-bottom:1em}}\
         td,th{{border:1px solid #bbb;padding:.2em .6em;text-align:left;vertical-align:top}}\
         .id{{font-family:monospace}} .missing{{color:#a00}} .present{{color:#070}}\
         </style></head><body>\n<h1>AegisLink network status</h1>\n\
         <p>As seen by authority <b id=\"authority\">{}</b>; epoch <b id=\"epoch\">{}</b> by its clock.</p>\n",
        esc(context.name),
        context.epoch
    );
    let Some(document) = document else {
        out.push_str(
            "<p id=\"no-document\">No consensus for the current epoch yet: the authorities \
             have not published one (at start, or when too few of them agree).</p>\n</body></html>\n",
        );
        return out;
    };
    let body = &document.body;
    let p = &body.parameters;
    let _ = write!(
        out,
        "<h2>Consensus of epoch <span id=\"document-epoch\">{}</span></h2>\n\
         <p>Valid from {} until {}.</p>\n\
         <table id=\"parameters\"><tr><th colspan=\"2\">parameters</th></tr>\n\
         <tr><td>mixing</td><td>{}</td></tr>\n\
         <tr><td>λP (real or loop, per client)</td><td>{} /s</td></tr>\n\
         <tr><td>λL (loop cover, per client)</td><td>{} /s</td></tr>\n\
         <tr><td>λD (drop cover, per client)</td><td>{} /s</td></tr>\n\
         <tr><td>λM (loop cover, per node)</td><td>{} /s</td></tr>\n\
         <tr><td>client sending</td><td id=\"shaping\">{}</td></tr>\n\
         <tr><td>epoch length</td><td>{} s</td></tr>\n\
         <tr><td>packet geometry</td><td class=\"id\">{}…</td></tr>\n</table>\n",
        body.epoch,
        utc(body.valid_after_ms),
        utc(body.valid_until_ms),
        esc(&mixing(&p.mixing)),
        p.lambda_p,
        p.lambda_l,
        p.lambda_d,
        p.lambda_m,
        match p.shaping {
            crate::ClientShaping::Poisson => "Poisson streams",
            crate::ClientShaping::ConstantRate => "constant rate",
        },
        p.epoch_length_ms as f64 / 1_000.0,
        &hex::encode(p.geometry_hash)[..16],
    );
    let present = document.signatures.len();
    let _ = write!(
        out,
        "<h2>Signatures: <span id=\"signatures\">{present} of {}</span> (at least {} needed)</h2>\n\
         <table id=\"signers\"><tr><th>authority</th><th>key</th><th>signed</th></tr>\n",
        context.authorities.len(),
        context.threshold
    );
    for signer in context.authorities {
        let signed = document
            .signatures
            .iter()
            .any(|s| s.authority == signer.key);
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"id\">{}…</td><td class=\"{}\">{}</td></tr>",
            esc(&signer.name),
            &hex::encode(signer.key)[..16],
            if signed { "present" } else { "missing" },
            if signed { "yes" } else { "no" }
        );
    }
    out.push_str("</table>\n<h2>Nodes</h2>\n");
    for (i, layer) in body.layers.iter().enumerate() {
        nodes_table(&mut out, &format!("Layer {}", i + 1), layer);
    }
    nodes_table(&mut out, "Gateways", &body.gateways);
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_times_are_utc() {
        assert_eq!(
            esc("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000 + 3_661_000), "2000-02-29 01:01:01 UTC");
    }

    #[test]
    fn without_a_document_the_page_says_so() {
        let context = PageContext {
            name: "<auth1>",
            authorities: &[],
            threshold: 1,
            epoch: 7,
        };
        let page = render(&context, None);
        assert!(page.contains("&lt;auth1&gt;"), "{page}");
        assert!(page.contains("id=\"no-document\""), "{page}");
        assert!(!page.contains("<script"), "{page}");
    }
}
