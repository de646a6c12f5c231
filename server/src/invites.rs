//! Invite secrets: only their SHA-256 is stored.

use sha2::{Digest, Sha256};

/// The SHA-256 of an invite secret, in hex, as the store keeps it.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}
