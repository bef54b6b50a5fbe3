//! `keygen`, and finding the keys that `put --encrypt-to` and `get --decrypt-with` name.

use std::path::{Path, PathBuf};

use mictlanx::xolo::{default_key_dir, KeyPair, PublicKey};
use serde_json::json;

use crate::output::Output;

/// `mictlanx keygen NAME [--dir D] [--force]`: a new X25519 pair as `D/NAME` (0600) and
/// `D/NAME.pub`, `D` defaulting to `XOLO_SECRET_PATH` or `~/.mictlanx/xolo/keys`.
pub fn keygen(name: &str, dir: Option<PathBuf>, force: bool, out: Output) -> Result<(), String> {
    let dir = match dir {
        Some(d) => d,
        None => default_key_dir().map_err(|e| format!("keygen failed: {e}"))?,
    };
    let pair = KeyPair::generate();
    let files = if force {
        pair.save_overwriting(&dir, name)
    } else {
        pair.save(&dir, name)
    }
    .map_err(|e| format!("keygen failed: {e}"))?;
    out.emit(
        json!({"name": name, "private": files.private, "public": files.public,
               "fingerprint": pair.fingerprint()}),
        || {
            format!(
                "{} (private, 0600) and {} (public), fingerprint {}",
                files.private.display(),
                files.public.display(),
                pair.fingerprint()
            )
        },
    );
    Ok(())
}

/// The public key `spec` names: a file path, else `NAME` or `NAME.pub` in the key directory.
pub fn find_public(spec: &str) -> Result<PublicKey, String> {
    let path = locate(spec, true)?;
    PublicKey::load(&path).map_err(|e| e.to_string())
}

/// The key pair `spec` names: a file path, else `NAME` in the key directory.
pub fn find_pair(spec: &str) -> Result<KeyPair, String> {
    let path = locate(spec, false)?;
    KeyPair::load_file(&path).map_err(|e| e.to_string())
}

fn locate(spec: &str, public: bool) -> Result<PathBuf, String> {
    if spec.is_empty() {
        return Err("an empty key name".to_string());
    }
    let given = Path::new(spec);
    if given.is_file() {
        return Ok(given.to_path_buf());
    }
    let dir = default_key_dir().map_err(|e| e.to_string())?;
    let mut candidates = vec![dir.join(spec)];
    if public && !spec.ends_with(".pub") {
        candidates.push(dir.join(format!("{spec}.pub")));
    }
    // A name is a file name in the key directory, never a path out of it.
    let plain_name = given.components().count() == 1 && !spec.starts_with('.');
    candidates
        .into_iter()
        .find(|p| plain_name && p.is_file())
        .ok_or_else(|| {
            format!(
                "no {} key {spec:?}: not a file, and not in {} (XOLO_SECRET_PATH)",
                if public { "public" } else { "private" },
                dir.display()
            )
        })
}
