//! The admin token: fixed by config, or generated on first start. Only its SHA-256 is stored.

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::ids::random_id;
use crate::store::Store;

const ADMIN_TOKEN_KEY: &str = "admin_token_sha256";

/// The token's hash, and the token itself if it was generated just now.
pub(crate) async fn admin_token(
    store: &dyn Store,
    config: &Config,
) -> anyhow::Result<([u8; 32], Option<String>)> {
    if let Some(token) = &config.admin_token {
        return Ok((Sha256::digest(token.as_bytes()).into(), None));
    }
    if let Some(stored) = store.get_setting(ADMIN_TOKEN_KEY).await? {
        let bytes = hex::decode(stored.trim()).context("stored admin token hash is not hex")?;
        let hash: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("stored admin token hash has the wrong length"))?;
        return Ok((hash, None));
    }
    let token = random_id(32);
    let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    store
        .set_setting(ADMIN_TOKEN_KEY, &hex::encode(hash))
        .await?;
    Ok((hash, Some(token)))
}
