//! `keys/<id>`: the master key, wrapped under a passphrase.

use crate::crypto::KdfParams;
use serde::{Deserialize, Serialize};

/// `keys/<sha256 of the object>`: a master key wrapped under a passphrase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    pub version: u32,
    pub created: chrono::DateTime<chrono::Utc>,
    pub host: String,
    pub kdf: KdfParams,
    #[serde(with = "crate::format::encoding::b64")]
    pub wrapped: Vec<u8>,
}
