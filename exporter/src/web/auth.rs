//! HTTP basic auth against bcrypt hashes. bcrypt is slow on purpose, so a
//! verified (user, password) is remembered by a SHA-256 digest, as
//! exporter-toolkit caches it; a wrong password is never cached.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use base64::Engine;
use sha2::{Digest, Sha256};

const CACHE_MAX: usize = 256;

pub struct BasicAuth {
    users: BTreeMap<String, String>,
    /// Checked against for unknown users, so they cost as much as known ones.
    decoy: String,
    verified: Mutex<HashSet<[u8; 32]>>,
}

impl BasicAuth {
    pub fn new(users: BTreeMap<String, String>) -> Option<Self> {
        let decoy = users.values().next()?.clone();
        Some(BasicAuth {
            users,
            decoy,
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// Whether the `Authorization` header value grants access.
    pub fn check(&self, header: Option<&str>) -> bool {
        let Some(encoded) = header.and_then(|h| h.strip_prefix("Basic ")) else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return false;
        };
        let Some((user, password)) = decoded.split_once(':') else {
            return false;
        };
        let Some(hash) = self.users.get(user) else {
            // Spend the same time as a real check so user names cannot be
            // probed by timing.
            let _ = bcrypt::verify(password, &self.decoy);
            return false;
        };
        let digest: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0u8])
            .chain_update(password.as_bytes())
            .chain_update([0u8])
            .chain_update(hash.as_bytes())
            .finalize()
            .into();
        if self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&digest)
        {
            return true;
        }
        if !bcrypt::verify(password, hash).unwrap_or(false) {
            return false;
        }
        let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(digest);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    }

    #[test]
    fn checks_bcrypt_and_caches_only_successes() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let a = BasicAuth::new([("alice".to_string(), hash)].into()).unwrap();
        assert!(a.check(Some(&header("alice", "s3cret"))));
        assert!(a.check(Some(&header("alice", "s3cret"))));
        assert!(!a.check(Some(&header("alice", "wrong"))));
        assert!(!a.check(Some(&header("mallory", "s3cret"))));
        assert!(!a.check(None));
        assert!(!a.check(Some("Bearer x")));
        assert!(!a.check(Some("Basic !!!")));
        assert_eq!(a.verified.lock().unwrap().len(), 1);
        assert!(BasicAuth::new(BTreeMap::new()).is_none());
    }
}
