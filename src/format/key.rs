//! `keys/<id>`: the master key (or a write-only key), wrapped under a passphrase.

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
    /// Format 3: `write-only` when `wrapped` holds a write-only key's
    /// material rather than the master key. Absent: full.
    #[serde(default, skip_serializing_if = "Access::is_full")]
    pub access: Access,
}

/// What a key object opens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// The master key: everything.
    #[default]
    Full,
    /// Backups only: no chunk, manifest or WAL opens with it.
    WriteOnly,
}

impl Access {
    pub fn is_full(&self) -> bool {
        *self == Access::Full
    }

    pub fn name(self) -> &'static str {
        match self {
            Access::Full => "full",
            Access::WriteOnly => "write-only",
        }
    }
}
