//! `config`: the one cleartext object, read before any key.

use super::FORMAT_VERSION;
use crate::engine::chunker::ChunkerParams;
use crate::error::{Error, Result};
use crate::format::encoding::Id;
use serde::{Deserialize, Serialize};

/// `config`: cleartext JSON, no secrets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub version: u32,
    pub id: Id,
    pub chunker: ChunkerParams,
    pub pack_size: u32,
}

impl Config {
    pub fn parse(bytes: &[u8]) -> Result<Config> {
        // Read the version alone first, so a future format gives a version
        // error rather than a confusing parse error.
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let v: Version = serde_json::from_slice(bytes).map_err(|e| Error::corrupt("config", e.to_string()))?;
        Error::check_version(|| "config".into(), v.version, FORMAT_VERSION)?;
        let c: Config = serde_json::from_slice(bytes).map_err(|e| Error::corrupt("config", e.to_string()))?;
        c.chunker.validate().map_err(|e| Error::corrupt("config", e))?;
        if !(1024 * 1024..=1024 * 1024 * 1024).contains(&c.pack_size) {
            return Err(Error::corrupt("config", format!("pack size {} out of range", c.pack_size)));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::DEFAULT_PACK_SIZE;

    #[test]
    fn config_version_is_checked() {
        let c = Config {
            version: FORMAT_VERSION + 1,
            id: Id([0; 32]),
            chunker: ChunkerParams::default(),
            pack_size: DEFAULT_PACK_SIZE,
        };
        let bytes = serde_json::to_vec(&c).unwrap();
        assert!(
            matches!(Config::parse(&bytes), Err(Error::UnsupportedVersion { version, .. }) if version == FORMAT_VERSION + 1)
        );
        assert!(matches!(Config::parse(b"{nope"), Err(Error::Corrupt { .. })));
    }
}
