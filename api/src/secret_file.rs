//! Where `otcd`'s secrets live: never in the data dir. The token secret is
//! `--jwt-secret`, else `--jwt-secret-file` (`./secrets/jwt-secret`), made
//! on first start; one an older build left in the data dir is moved out to
//! a `--jwt-secret-file` the operator names (refused until then), so the
//! tokens it signed stay valid. The sandbox's keys are kept out of
//! the data dir by the same check ([`outside_data_dir`]).

use std::io::{Error, ErrorKind};
use std::path::{Path, PathBuf};

use crate::server::ServerConfig;

/// Where an older build kept the token secret, inside the data dir.
const OLD_NAME: &str = "jwt-secret";
/// `--jwt-secret-file` when not given.
pub const DEFAULT_FILE: &str = "./secrets/jwt-secret";

/// The token secret: from the flag, else from `--jwt-secret-file`, created
/// on first start (then the log says how to mint tokens) or moved there
/// from the data dir when the flag names where. The file is readable by its owner only and appears
/// whole (written aside, synced, renamed). An empty secret is refused (any
/// token would verify), and a file that exists but cannot be read is an
/// error, never replaced.
///
/// # Errors
/// An empty secret, a file inside the data dir, or one that cannot be
/// read or made; the message names the flag or the path.
pub fn token_secret(cfg: &ServerConfig) -> std::io::Result<Vec<u8>> {
    token_secret_or(cfg, Path::new(DEFAULT_FILE))
}

/// [`token_secret`], with `default` where `--jwt-secret-file` is not given.
fn token_secret_or(cfg: &ServerConfig, default: &Path) -> std::io::Result<Vec<u8>> {
    let old = cfg.data_dir.join(OLD_NAME);
    if let Some(s) = &cfg.jwt_secret {
        if s.trim().is_empty() {
            return Err(empty("--jwt-secret"));
        }
        if old.exists() {
            tracing::warn!(path = %old.display(), "a token secret an older build made is in the data dir, unused: remove it");
        }
        return Ok(s.as_bytes().to_vec());
    }
    let chosen = cfg.jwt_secret_file.is_some();
    let path = cfg
        .jwt_secret_file
        .clone()
        .unwrap_or_else(|| default.to_owned());
    let path = &path;
    outside_data_dir(path, &cfg.data_dir, "--jwt-secret-file")
        .map_err(|e| Error::new(ErrorKind::InvalidInput, e))?;
    let flagged = |e: Error| Error::new(e.kind(), format!("--jwt-secret-file {e}"));
    if let Some(s) = read(path).map_err(flagged)? {
        // A move cut short leaves the same secret in the data dir.
        if read(&old).ok().flatten().as_deref() == Some(s.as_slice()) {
            remove_synced(&old, &cfg.data_dir)?;
            tracing::warn!(path = %old.display(), "removed the token secret's old copy from the data dir");
        } else if old.exists() {
            tracing::warn!(path = %old.display(), "a token secret an older build made is in the data dir, unused: remove it");
        }
        return Ok(s);
    }
    if let Some(s) = read(&old)? {
        // Moved only where the operator said: a default beside the working
        // directory may not outlive the data dir (a container's volume).
        if !chosen {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "the token secret is in the data dir ({}), where secrets no longer go: \
                     start with --jwt-secret-file PATH (outside the data dir, kept as long \
                     as it) and it is moved there, the same secret, so its tokens stay valid",
                    old.display()
                ),
            ));
        }
        write_whole(path, &s).map_err(flagged)?;
        remove_synced(&old, &cfg.data_dir)?;
        tracing::warn!(
            from = %old.display(),
            to = %path.display(),
            "moved the token secret out of the data dir (tokens it signed stay valid)"
        );
        return Ok(s);
    }
    let s = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    write_whole(path, s.as_bytes()).map_err(flagged)?;
    tracing::warn!(
        path = %path.display(),
        "no --jwt-secret given: created one; mint a development token with \
         `cargo run --bin otcctl -- token mint --secret-file {} --user <uuid> --role user`",
        path.display()
    );
    Ok(s.into_bytes())
}

/// Refuses a secret's path (a file or a directory) inside the data dir,
/// naming `flag`. Both are resolved through links; the data dir is made
/// if missing (the store makes it anyway).
///
/// # Errors
/// The path is inside the data dir, or a directory cannot be made or read.
pub fn outside_data_dir(path: &Path, data_dir: &Path, flag: &str) -> Result<(), String> {
    std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let data =
        std::fs::canonicalize(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    if resolved(path)
        .map_err(|e| format!("{flag} {}: {e}", path.display()))?
        .starts_with(&data)
    {
        return Err(format!(
            "{flag} {} is inside the data dir ({}); secrets never go there",
            path.display(),
            data_dir.display()
        ));
    }
    Ok(())
}

/// `path` with its longest existing ancestor resolved through links, and
/// the rest (not yet made) appended as written.
fn resolved(path: &Path) -> std::io::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        match std::fs::canonicalize(existing) {
            Ok(real) => return Ok(rest.iter().rev().fold(real, |p, part| p.join(part))),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let (Some(parent), Some(name)) = (existing.parent(), existing.file_name()) else {
                    return Err(e);
                };
                rest.push(name.to_owned());
                existing = parent;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The secret in `path`, trimmed; `None` if there is no such file. An
/// empty one is refused; one readable by others (an older build's) is
/// made its owner's alone.
fn read(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let s = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::new(e.kind(), format!("{}: {e}", path.display()))),
    };
    if s.trim().is_empty() {
        return Err(empty(&format!(
            "{} (remove it to have a new one made)",
            path.display()
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
            tracing::warn!(path = %path.display(), "the token secret was readable by others: now its owner's alone");
        }
    }
    Ok(Some(s.trim().as_bytes().to_vec()))
}

/// Writes `bytes` to `path` whole and durably: aside, synced, renamed, the
/// directory (made its owner's alone if missing) synced.
fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut dirs = std::fs::DirBuilder::new();
    dirs.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut dirs, 0o700);
    dirs.create(&parent)
        .map_err(|e| Error::new(e.kind(), format!("{}: {e}", parent.display())))?;
    let mut aside = path.as_os_str().to_owned();
    aside.push(".new");
    let aside = PathBuf::from(aside);
    otc_gateway::sandbox::write_private(&aside, bytes).map_err(Error::other)?;
    std::fs::rename(&aside, path)
        .map_err(|e| Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    std::fs::File::open(&parent)?.sync_all()
}

fn remove_synced(path: &Path, dir: &Path) -> std::io::Result<()> {
    std::fs::remove_file(path)
        .map_err(|e| Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    std::fs::File::open(dir)?.sync_all()
}

fn empty(from: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("{from} is empty: any token would verify"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    /// `args` parsed as otcd's flags, whatever the runner's environment
    /// holds (`OTC_JWT_SECRET`, `OTC_JWT_SECRET_FILE`).
    fn parse(args: &[&str]) -> ServerConfig {
        let command = ServerConfig::command()
            .mut_arg("jwt_secret", |a| a.env(None::<&str>))
            .mut_arg("jwt_secret_file", |a| a.env(None::<&str>));
        let matches = command.try_get_matches_from(args).expect("flags");
        ServerConfig::from_arg_matches(&matches).expect("flags")
    }

    /// Flags with the data dir and the secret file in `dir`.
    fn config_in(dir: &Path, extra: &[&str]) -> ServerConfig {
        let data = dir.join("data").display().to_string();
        let file = dir.join("secrets/jwt-secret").display().to_string();
        let mut args = vec!["otcd", "--data-dir", &data, "--jwt-secret-file", &file];
        args.extend_from_slice(extra);
        parse(&args)
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).expect("meta").permissions().mode() & 0o777
    }

    /// The secret made on first start is outside the data dir, its owner's
    /// alone, whole, and read back as it is on the next start.
    #[test]
    fn the_token_secret_made_on_first_start_is_private_kept_and_not_in_the_data_dir() {
        let dir = tempfile::tempdir().expect("dir");
        let cfg = config_in(dir.path(), &[]);
        let made = token_secret(&cfg).expect("made");
        assert_eq!(made.len(), 64);
        let path = dir.path().join("secrets/jwt-secret");
        assert_eq!(std::fs::read(&path).expect("file"), made);
        assert!(!dir.path().join("secrets/jwt-secret.new").exists());
        let in_data: Vec<_> = std::fs::read_dir(dir.path().join("data"))
            .expect("data dir")
            .collect();
        assert!(in_data.is_empty(), "{in_data:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&dir.path().join("secrets")), 0o700);
            assert_eq!(token_secret(&cfg).expect("again"), made);
            // One an older build left readable by others is made private.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            assert_eq!(token_secret(&cfg).expect("read"), made);
            assert_eq!(mode(&path), 0o600);
        }
    }

    /// An older build's secret in the data dir is moved out, the same
    /// secret (its tokens stay valid); a move cut short is finished.
    #[test]
    fn a_secret_in_the_data_dir_is_moved_out_and_kept() {
        let dir = tempfile::tempdir().expect("dir");
        let cfg = config_in(dir.path(), &[]);
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let old = data.join("jwt-secret");
        std::fs::write(&old, "older-builds-secret\n").expect("write");
        assert_eq!(
            token_secret(&cfg).expect("moved"),
            b"older-builds-secret".to_vec()
        );
        assert!(!old.exists(), "the data dir keeps no copy");
        let path = dir.path().join("secrets/jwt-secret");
        assert_eq!(std::fs::read(&path).expect("moved"), b"older-builds-secret");
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
        // Cut short after the new file was made: the old copy goes.
        std::fs::write(&old, "older-builds-secret").expect("write");
        assert_eq!(
            token_secret(&cfg).expect("read"),
            b"older-builds-secret".to_vec()
        );
        assert!(!old.exists());
        // A different one in the data dir is not this server's: left alone.
        std::fs::write(&old, "another").expect("write");
        assert_eq!(
            token_secret(&cfg).expect("read"),
            b"older-builds-secret".to_vec()
        );
        assert!(old.exists());
    }

    /// Without `--jwt-secret-file`, an older build's secret in the data
    /// dir is not moved to the default beside the working directory (which
    /// may not outlive the data dir): the start is refused, naming the
    /// flag, and the secret stays where it is.
    #[test]
    fn a_secret_in_the_data_dir_is_moved_only_where_the_flag_says() {
        let dir = tempfile::tempdir().expect("dir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let old = data.join("jwt-secret");
        std::fs::write(&old, "older-builds-secret").expect("write");
        let data_flag = data.display().to_string();
        let cfg = parse(&["otcd", "--data-dir", &data_flag]);
        assert_eq!(cfg.jwt_secret_file, None);
        let default = dir.path().join("cwd/secrets/jwt-secret");
        let e = token_secret_or(&cfg, &default).expect_err("not moved to a default");
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("--jwt-secret-file PATH"), "{e}");
        assert_eq!(std::fs::read(&old).expect("kept"), b"older-builds-secret");
        assert!(!default.exists(), "nothing made by default");
        // Without an old one, the default is made and used.
        std::fs::remove_file(&old).expect("remove");
        let made = token_secret_or(&cfg, &default).expect("made");
        assert_eq!(std::fs::read(&default).expect("default"), made);
    }

    /// A secret file in the data dir, directly or through a link, is
    /// refused naming the flag, and nothing is written there.
    #[test]
    fn a_secret_file_inside_the_data_dir_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let data = dir.path().join("data");
        let inside = data.join("keys/jwt-secret").display().to_string();
        let cfg = config_in(dir.path(), &["--jwt-secret-file", &inside]);
        let e = token_secret(&cfg).expect_err("inside");
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(
            e.to_string().contains("--jwt-secret-file") && e.to_string().contains("data dir"),
            "{e}"
        );
        assert!(!data.join("keys").exists());
        // The sandbox's keys are kept out by the same check.
        let e = outside_data_dir(&data.join("sandbox"), &data, "--sandbox-dir")
            .expect_err("sandbox inside");
        assert!(e.starts_with("--sandbox-dir "), "{e}");
        outside_data_dir(&dir.path().join("sandbox"), &data, "--sandbox-dir").expect("beside");
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&data, &link).expect("link");
            let through = link.join("jwt-secret").display().to_string();
            let cfg = config_in(dir.path(), &["--jwt-secret-file", &through]);
            assert!(token_secret(&cfg).is_err(), "through a link");
            assert!(!data.join("jwt-secret").exists());
        }
    }

    /// An empty secret would let any token verify: refused, from the flag
    /// or the file; a file that cannot be read is never replaced.
    #[test]
    fn an_empty_or_unreadable_token_secret_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        for blank in ["", "  "] {
            let e = token_secret(&config_in(dir.path(), &["--jwt-secret", blank]))
                .expect_err("blank flag");
            assert!(e.to_string().contains("--jwt-secret is empty"), "{e}");
        }
        let path = dir.path().join("secrets/jwt-secret");
        std::fs::create_dir_all(dir.path().join("secrets")).expect("dir");
        std::fs::write(&path, "  \n").expect("write");
        let e = token_secret(&config_in(dir.path(), &[])).expect_err("empty file");
        assert!(
            e.to_string().contains("jwt-secret") && e.to_string().contains("empty"),
            "{e}"
        );
        std::fs::write(&path, [0xff, 0xfe, 0x00]).expect("write");
        let e = token_secret(&config_in(dir.path(), &[])).expect_err("not text");
        assert!(e.to_string().contains("jwt-secret"), "{e}");
        assert_eq!(std::fs::read(&path).expect("kept"), [0xff, 0xfe, 0x00]);
    }
}
