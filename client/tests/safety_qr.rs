//! The safety number's terminal QR code, read back by a decoder written
//! elsewhere: the drawing is parsed into modules, written as an image and
//! decoded with `zbarimg` (Debian's `zbar-tools`, which `scripts/test.sh`
//! installs).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

use aegis_client::safety::{SafetyNumber, parse_terminal_qr};

/// Pixels per module in the image.
const SCALE: usize = 8;

/// A plain PBM (P1) image of the modules, with a further four-module
/// light border (the quiet zone the QR standard asks for).
fn pbm(modules: &[Vec<bool>]) -> String {
    let border = 4;
    let size = modules.len() + 2 * border;
    let dark = |x: usize, y: usize| {
        x >= border
            && y >= border
            && x < size - border
            && y < size - border
            && modules[y - border][x - border]
    };
    let mut out = format!("P1\n{} {}\n", size * SCALE, size * SCALE);
    for y in 0..size * SCALE {
        for x in 0..size * SCALE {
            out.push(if dark(x / SCALE, y / SCALE) { '1' } else { '0' });
            out.push(' ');
        }
        out.push('\n');
    }
    out
}

#[test]
fn zbar_reads_the_safety_number_from_the_terminal_drawing() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (a, b)) in [([1u8; 32], [2u8; 32]), ([200u8; 32], [7u8; 32])]
        .iter()
        .enumerate()
    {
        let number = SafetyNumber::between(a, b);
        let drawing = number.qr_terminal();
        let modules = parse_terminal_qr(&drawing).expect("a drawing of modules");
        let image = dir.path().join(format!("code-{i}.pbm"));
        std::fs::write(&image, pbm(&modules)).unwrap();
        let out = Command::new("zbarimg")
            .args(["--quiet", "--raw"])
            .arg(&image)
            .output()
            .expect(
                "zbarimg is installed (Debian package zbar-tools; scripts/test.sh installs it)",
            );
        let report = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "zbarimg failed: {report}");
        assert_eq!(
            String::from_utf8(out.stdout).unwrap().trim(),
            number.digits(),
            "the code holds the number"
        );
    }
}
