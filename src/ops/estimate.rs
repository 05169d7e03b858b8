//! What a command will cost before it costs: the requests by type and the
//! bytes each way (on S3, requests and egress are the bill), and with a
//! price list the money. An estimate plans the command as the command
//! would (reading keys, indexes and manifests, measured: that planning is
//! spent) and adds up the data requests the plan would make, without
//! making them.

use crate::backend::Requests;
use crate::error::{Error, Result};
use std::path::Path;

/// What a command would cost: the planning (measured, and made again by the
/// real run) and the work (counted from the plan).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Estimate {
    /// "restore of snapshot 1a2b3c4d", for the report.
    pub operation: String,
    pub planning: Requests,
    pub work: Requests,
    /// Bytes the work writes to local disk (a restore's files).
    pub local_write_bytes: u64,
    /// Where a figure is approximate, why (a random subset, new packs' headers).
    pub approximate: Vec<String>,
}

impl Estimate {
    pub fn new(operation: impl Into<String>, work: Requests) -> Estimate {
        Estimate { operation: operation.into(), work, ..Default::default() }
    }

    /// What the command makes in all: its planning again, and the work.
    pub fn total(&self) -> Requests {
        self.planning + self.work
    }
}

/// A price list (`--price-file`, JSON), in one currency: per 1000 requests
/// of each type and per GiB each way. Missing prices are 0; an unknown key
/// is refused (a misspelt price would silently cost nothing).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Prices {
    pub currency: String,
    pub get_per_1000: f64,
    pub list_per_1000: f64,
    pub put_per_1000: f64,
    pub delete_per_1000: f64,
    pub download_per_gib: f64,
    pub upload_per_gib: f64,
}

/// The money a set of requests costs under a price list.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Cost {
    pub currency: String,
    pub requests: f64,
    pub transfer: f64,
    pub total: f64,
}

const GIB: f64 = (1u64 << 30) as f64;

impl Prices {
    pub fn load(path: &Path) -> Result<Prices> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let prices: Prices = serde_json::from_str(&text)
            .map_err(|e| Error::InvalidOptions(format!("price file {}: {e}", path.display())))?;
        let all = [
            prices.get_per_1000,
            prices.list_per_1000,
            prices.put_per_1000,
            prices.delete_per_1000,
            prices.download_per_gib,
            prices.upload_per_gib,
        ];
        if all.iter().any(|p| !p.is_finite() || *p < 0.0) {
            return Err(Error::InvalidOptions(format!(
                "price file {}: a price is negative or not a number",
                path.display()
            )));
        }
        Ok(prices)
    }

    pub fn cost(&self, r: &Requests) -> Cost {
        let per = |n: u64, price: f64| n as f64 / 1000.0 * price;
        let requests = per(r.get, self.get_per_1000)
            + per(r.list, self.list_per_1000)
            + per(r.put, self.put_per_1000)
            + per(r.delete, self.delete_per_1000);
        let transfer =
            r.download_bytes as f64 / GIB * self.download_per_gib + r.upload_bytes as f64 / GIB * self.upload_per_gib;
        Cost { currency: self.currency.clone(), requests, transfer, total: requests + transfer }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_adds_requests_per_thousand_and_transfer_per_gib() {
        let prices = Prices { get_per_1000: 0.4, put_per_1000: 5.0, download_per_gib: 0.09, ..Default::default() };
        let r = Requests { get: 2000, put: 100, download_bytes: 10 << 30, ..Default::default() };
        let c = prices.cost(&r);
        assert!((c.requests - (0.8 + 0.5)).abs() < 1e-9);
        assert!((c.transfer - 0.9).abs() < 1e-9);
        assert!((c.total - 2.2).abs() < 1e-9);
    }

    #[test]
    fn a_misspelt_or_negative_price_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::fs::write(&path, r#"{"get_per_100": 0.4}"#).unwrap();
        assert!(Prices::load(&path).unwrap_err().to_string().contains("get_per_100"));
        std::fs::write(&path, r#"{"get_per_1000": -1}"#).unwrap();
        assert!(Prices::load(&path).unwrap_err().to_string().contains("negative"));
        std::fs::write(&path, r#"{"currency": "EUR", "get_per_1000": 0.4}"#).unwrap();
        assert_eq!(Prices::load(&path).unwrap().currency, "EUR");
    }
}
