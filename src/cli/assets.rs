//! `anomalyd generate-assets DIR` (hidden): the man pages and shell completions the
//! Debian package installs, rendered from the clap definition. The rendered files are
//! committed under `dist/` so `cargo deb` needs no build step; a test keeps them equal
//! to what this code renders.

use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

/// The command as the man pages describe it: the plain package version, as the pages
/// are shared by builds with and without optional features.
fn command() -> clap::Command {
    super::Cli::command().version(env!("CARGO_PKG_VERSION"))
}

/// Writes `man/anomalyd.1`, `man/anomalyd-<command>.1` and `completions/` for bash,
/// zsh and fish below `dir`.
pub(crate) fn write_all(dir: &Path) -> anyhow::Result<()> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    for d in [&man, &completions] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    clap_mangen::generate_to(command(), &man)
        .with_context(|| format!("cannot write man pages to {}", man.display()))?;
    for (shell, file) in [
        (Shell::Bash, "anomalyd.bash"),
        (Shell::Zsh, "_anomalyd"),
        (Shell::Fish, "anomalyd.fish"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut command(), "anomalyd", &mut out);
        let path = completions.join(file);
        std::fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;

    fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        for sub in ["man", "completions"] {
            for e in std::fs::read_dir(dir.join(sub)).unwrap() {
                let path = e.unwrap().path();
                let rel = path.strip_prefix(dir).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
        out
    }

    /// `dist/` is what `generate-assets` writes today. After a change to the command
    /// line, run with `UPDATE_GOLDEN=1` (or `anomalyd generate-assets dist`) and commit.
    #[test]
    fn committed_man_pages_and_completions_match_the_command_line() {
        let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist");
        let fresh = tempfile::tempdir().unwrap();
        write_all(fresh.path()).unwrap();
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            let _ = std::fs::remove_dir_all(dist.join("man"));
            let _ = std::fs::remove_dir_all(dist.join("completions"));
            write_all(&dist).unwrap();
        }
        let (want, got) = (files(fresh.path()), files(&dist));
        assert_eq!(
            want.keys().collect::<Vec<_>>(),
            got.keys().collect::<Vec<_>>(),
            "dist/ is stale: run UPDATE_GOLDEN=1 cargo test --bin anomalyd"
        );
        for (path, bytes) in &want {
            assert!(
                got[path] == *bytes,
                "{} is stale: run UPDATE_GOLDEN=1 cargo test --bin anomalyd",
                path.display()
            );
        }
        let man = String::from_utf8(want[Path::new("man/anomalyd.1")].clone()).unwrap();
        for text in ["check\\-config", "replay", "\\-\\-log\\-format"] {
            assert!(man.contains(text), "anomalyd.1 lacks {text}");
        }
        let run = String::from_utf8(want[Path::new("man/anomalyd-run.1")].clone()).unwrap();
        assert!(
            run.contains("/etc/anomalyd/anomalyd.toml"),
            "man page shows the default config"
        );
        assert!(
            !want.keys().any(|p| p.to_string_lossy().contains("generate")),
            "hidden command has no page"
        );
        let bash = String::from_utf8(want[Path::new("completions/anomalyd.bash")].clone()).unwrap();
        assert!(
            bash.contains("check-config") && bash.contains("--log-format"),
            "bash completes commands and flags"
        );
    }
}
