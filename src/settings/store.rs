//! The saved settings on disk, under `server.state_dir`:
//!
//! - `sso.json`: the [`Saved`] document in force;
//! - `sso.json.prev`: the one before the last save;
//! - `idp-metadata.xml`: the uploaded IdP metadata (what
//!   `saml.idp_metadata_file` points at).
//!
//! Every file is written to a temporary name, synced and renamed over the
//! old one, so a crash leaves either the old or the new file, never half
//! of one.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::{Metadata, Saved};

pub const SETTINGS_FILE: &str = "sso.json";
pub const PREVIOUS_FILE: &str = "sso.json.prev";
pub const METADATA_FILE: &str = "idp-metadata.xml";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a saved settings document: {message}")]
    Parse { path: String, message: String },
    #[error("server.state_dir is not set: settings cannot be saved")]
    NoStateDir,
    #[error("the shared settings store failed: {0}")]
    Shared(#[source] crate::session::StoreError),
    #[error("the new settings could not be put in force: {0}")]
    Apply(String),
}

/// Creates the directory when missing and checks that it is writable (for
/// `config::validate`).
pub fn prepare_dir(dir: &Path) -> Result<PathBuf, String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create the directory: {e}"))?;
    if !dir.is_dir() {
        return Err("not a directory".into());
    }
    let probe = dir.join(".authgate-write-test");
    fs::write(&probe, b"").map_err(|e| format!("not writable: {e}"))?;
    let _ = fs::remove_file(&probe);
    Ok(dir.to_path_buf())
}

pub fn metadata_path(dir: &Path) -> PathBuf {
    dir.join(METADATA_FILE)
}

/// The saved settings, or `None` when nothing was saved yet.
pub fn load(dir: &Path) -> Result<Option<Saved>, Error> {
    let path = dir.join(SETTINGS_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Read {
                path: path.display().to_string(),
                source,
            })
        }
    };
    parse(&text).map(Some).map_err(|message| Error::Parse {
        path: path.display().to_string(),
        message,
    })
}

pub fn parse(text: &str) -> Result<Saved, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

pub fn to_json(saved: &Saved) -> String {
    serde_json::to_string_pretty(saved).unwrap_or_default()
}

/// Saves `saved` as the document in force; the one it replaces becomes
/// `sso.json.prev`. The uploaded metadata file is written first, so the
/// document never points at a file that is not there.
pub fn save(dir: &Path, saved: &Saved) -> Result<(), Error> {
    write_metadata(dir, saved)?;
    let current = dir.join(SETTINGS_FILE);
    if current.exists() {
        let tmp = dir.join(format!("{PREVIOUS_FILE}.tmp"));
        fs::copy(&current, &tmp).map_err(|source| Error::Write {
            path: tmp.display().to_string(),
            source,
        })?;
        rename(&tmp, &dir.join(PREVIOUS_FILE))?;
    }
    write_atomic(&current, to_json(saved).as_bytes())
}

/// Writes the uploaded metadata of `saved` (when it has one and the file
/// differs) to `idp-metadata.xml`.
pub fn write_metadata(dir: &Path, saved: &Saved) -> Result<(), Error> {
    if let Some(Metadata::Xml { xml }) = &saved.metadata {
        let path = metadata_path(dir);
        if fs::read_to_string(&path).ok().as_deref() != Some(xml.as_str()) {
            write_atomic(&path, xml.as_bytes())?;
        }
    }
    Ok(())
}

/// Puts `sso.json.prev` back in force (a save that could not be applied).
pub fn restore_previous(dir: &Path) -> Result<(), Error> {
    let prev = dir.join(PREVIOUS_FILE);
    let current = dir.join(SETTINGS_FILE);
    if !prev.exists() {
        return match fs::remove_file(&current) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Write {
                path: current.display().to_string(),
                source,
            }),
        };
    }
    let text = fs::read(&prev).map_err(|source| Error::Read {
        path: prev.display().to_string(),
        source,
    })?;
    if let Ok(saved) = parse(&String::from_utf8_lossy(&text)) {
        write_metadata(dir, &saved)?;
    }
    write_atomic(&current, &text)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    let err = |source| Error::Write {
        path: tmp.display().to_string(),
        source,
    };
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        if let Ok(d) = fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

fn rename(from: &Path, to: &Path) -> Result<(), Error> {
    fs::rename(from, to).map_err(|source| Error::Write {
        path: to.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Tables;

    fn saved(version: u64, xml: &str) -> Saved {
        Saved {
            version,
            saved_by: "alice@example.com".into(),
            saved_at: 1,
            metadata: Some(Metadata::Xml { xml: xml.into() }),
            mapping: Some(Tables::default()),
        }
    }

    #[test]
    fn a_save_keeps_the_previous_version_and_restore_puts_it_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(load(dir.path()).expect("load"), None);
        save(dir.path(), &saved(1, "<one/>")).expect("save 1");
        save(dir.path(), &saved(2, "<two/>")).expect("save 2");
        assert_eq!(load(dir.path()).expect("load"), Some(saved(2, "<two/>")));
        assert_eq!(
            fs::read_to_string(metadata_path(dir.path())).expect("xml"),
            "<two/>"
        );
        let prev = parse(&fs::read_to_string(dir.path().join(PREVIOUS_FILE)).expect("prev"))
            .expect("prev parses");
        assert_eq!(prev, saved(1, "<one/>"));
        restore_previous(dir.path()).expect("restore");
        assert_eq!(load(dir.path()).expect("load"), Some(saved(1, "<one/>")));
        assert_eq!(
            fs::read_to_string(metadata_path(dir.path())).expect("xml"),
            "<one/>"
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_damaged_document_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(SETTINGS_FILE), "{not json").expect("write");
        let e = load(dir.path()).expect_err("refused");
        assert!(e.to_string().contains("sso.json"), "{e}");
    }
}
