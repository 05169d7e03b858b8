//! Throwaway Garage servers for tests, through scripts/garage.sh.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub struct Garage {
    pub dir: tempfile::TempDir,
    /// AWS_* and COFFER_S3_* variables for coffer.
    pub env: Vec<(String, String)>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/garage.sh")
}

fn garage_binary() -> PathBuf {
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let cargo_bin = home.join(".cargo/bin/garage");
    if cargo_bin.exists() {
        return cargo_bin;
    }
    PathBuf::from("garage")
}

impl Garage {
    pub fn start() -> Garage {
        let dir = tempfile::Builder::new().prefix("coffer-garage-").tempdir().unwrap();
        let out = Command::new(script()).arg("start").arg(dir.path()).env("GARAGE", garage_binary()).output().unwrap();
        assert!(
            out.status.success(),
            "garage did not start (run `make test`, which installs it): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Garage { dir, env }
    }

    pub fn get(&self, key: &str) -> String {
        self.env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_default()
    }

    pub fn endpoint(&self) -> String {
        self.get("COFFER_S3_ENDPOINT")
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.endpoint().trim_start_matches("http://").parse().unwrap()
    }

    pub fn stop(&self) {
        let _ = Command::new(script()).arg("stop").arg(self.dir.path()).env("GARAGE", garage_binary()).output();
    }

    pub fn restart(&self) {
        let out =
            Command::new(script()).arg("restart").arg(self.dir.path()).env("GARAGE", garage_binary()).output().unwrap();
        assert!(out.status.success(), "garage restart: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}

static SHARED: OnceLock<Garage> = OnceLock::new();

/// The Garage every test may share (each uses its own prefix in the bucket).
pub fn shared() -> &'static Garage {
    SHARED.get_or_init(|| {
        let g = Garage::start();
        // SAFETY: registering a plain extern "C" function.
        unsafe { libc::atexit(stop_shared) };
        g
    })
}

extern "C" fn stop_shared() {
    if let Some(g) = SHARED.get() {
        g.stop();
        let _ = std::fs::remove_dir_all(g.dir.path());
    }
}
