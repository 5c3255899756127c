//! The terminal and the file system: the passphrase prompt and where the
//! profile lives.

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub(crate) fn passphrase(prompt: &str) -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("AEGIS_PASSPHRASE") {
        return Ok(p);
    }
    eprint!("{prompt}: ");
    std::io::stderr().flush()?;
    let quiet = NoEcho::on_terminal();
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if quiet.is_some() {
        eprintln!();
    }
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Terminal echo turned off while a passphrase is typed (`stty -echo` on
/// the terminal that is standard input), and back on when dropped, also
/// after an error. Nothing is changed when standard input is not a
/// terminal (a pipe, as scripts and the launcher use).
pub(crate) struct NoEcho;

impl NoEcho {
    fn on_terminal() -> Option<NoEcho> {
        use std::io::IsTerminal as _;
        if !std::io::stdin().is_terminal() {
            return None;
        }
        stty("-echo").then_some(NoEcho)
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        stty("echo");
    }
}

/// Runs `stty ARG` on the terminal that is standard input.
pub(crate) fn stty(arg: &str) -> bool {
    std::process::Command::new("stty")
        .arg(arg)
        .stdin(std::process::Stdio::inherit())
        .status()
        .is_ok_and(|s| s.success())
}

/// The profile directory: the one given, else `./aegis-profile` if it
/// exists (the old default), else `aegislink/profile` in the platform's
/// data directory.
pub(crate) fn profile_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let old = PathBuf::from("aegis-profile");
    default_profile(
        given,
        old.exists(),
        std::env::var_os("XDG_DATA_HOME"),
        std::env::var_os("HOME"),
    )
    .context("no --profile, AEGIS_PROFILE, XDG_DATA_HOME or HOME to put the profile in")
}

/// [`profile_dir`] from what it reads: the given folder, whether the old
/// default exists, `XDG_DATA_HOME` (used only if absolute, as the XDG
/// specification says) and `HOME`.
pub(crate) fn default_profile(
    given: Option<PathBuf>,
    old_exists: bool,
    xdg_data_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    if given.is_some() {
        return given;
    }
    if old_exists {
        return Some(PathBuf::from("aegis-profile"));
    }
    let data = xdg_data_home
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home.map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(data.join("aegislink").join("profile"))
}

/// Makes the folder a new profile goes in, readable by its owner only.
pub(crate) fn make_parent(profile: &Path) -> anyhow::Result<()> {
    if let Some(parent) = profile.parent().filter(|p| !p.as_os_str().is_empty()) {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_goes_where_the_platform_keeps_user_data() {
        let p = |s: &str| Some(PathBuf::from(s));
        let os = |s: &str| Some(std::ffi::OsString::from(s));
        assert_eq!(default_profile(p("/x"), true, None, None), p("/x"));
        assert_eq!(
            default_profile(None, true, None, os("/home/a")),
            p("aegis-profile")
        );
        assert_eq!(
            default_profile(None, false, os("/data"), os("/home/a")),
            p("/data/aegislink/profile")
        );
        // A relative XDG_DATA_HOME is ignored, as the specification says.
        assert_eq!(
            default_profile(None, false, os("rel"), os("/home/a")),
            p("/home/a/.local/share/aegislink/profile")
        );
        assert_eq!(default_profile(None, false, None, None), None);
    }
}
