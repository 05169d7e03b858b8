//! Small serde helpers shared by the on-disk formats: base64 byte fields,
//! 32-byte ids as hex, and paths that may not be UTF-8.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A 32-byte object or chunk id, shown and stored as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub [u8; 32]);

impl Id {
    pub fn random() -> Self {
        Id(crate::crypto::random_id())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    pub fn from_hex(s: &str) -> Option<Id> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Id(out))
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.short())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Id::from_hex(&s).ok_or_else(|| serde::de::Error::custom(format!("not a 64-digit hex id: {s:?}")))
    }
}

pub mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

/// Raw path bytes (Unix paths need not be UTF-8). Stored as a JSON string
/// when they are valid UTF-8, else as `{"base64": "..."}`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RawPath(pub Vec<u8>);

impl RawPath {
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }

    /// The exact bytes, base64, when `display` cannot show them (reports
    /// give both: a JSON path keeps one type, and a script its name).
    pub fn base64_unless_utf8(&self) -> Option<String> {
        std::str::from_utf8(&self.0).is_err().then(|| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(&self.0)
        })
    }
}

impl fmt::Debug for RawPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.display())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum RawPathRepr {
    Text(String),
    Bytes {
        #[serde(with = "b64")]
        base64: Vec<u8>,
    },
}

impl Serialize for RawPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => RawPathRepr::Text(text.to_owned()).serialize(s),
            Err(_) => RawPathRepr::Bytes { base64: self.0.clone() }.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for RawPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match RawPathRepr::deserialize(d)? {
            RawPathRepr::Text(t) => RawPath(t.into_bytes()),
            RawPathRepr::Bytes { base64 } => RawPath(base64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_path_round_trips_utf8_and_binary() {
        for bytes in [b"plain/name".to_vec(), vec![b'a', 0xff, 0xfe, b'/', b'z'], vec![]] {
            let p = RawPath(bytes.clone());
            let json = serde_json::to_string(&p).unwrap();
            let back: RawPath = serde_json::from_str(&json).unwrap();
            assert_eq!(back.0, bytes, "{json}");
        }
        assert_eq!(serde_json::to_string(&RawPath(b"x".to_vec())).unwrap(), "\"x\"");
    }

    #[test]
    fn id_hex_round_trip_and_rejects_garbage() {
        let id = Id::random();
        assert_eq!(Id::from_hex(&id.to_hex()), Some(id));
        assert_eq!(Id::from_hex("abc"), None);
        assert!(serde_json::from_str::<Id>("\"zz\"").is_err());
    }
}
