//! moto's standalone S3 server (installed by scripts/ensure-moto.sh into
//! .venv-moto), for what Garage lacks: buckets with Object Lock.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    child: Child,
    pub port: u16,
}

fn venv() -> PathBuf {
    std::env::var_os("COFFER_TEST_MOTO_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-moto"))
}

impl Moto {
    pub fn start() -> Moto {
        Moto::start_with(&[])
    }

    /// A server that enforces IAM policies once its first `free` requests
    /// (the set-up: buckets, users, keys, policies) are made.
    pub fn start_with_iam(free: u32) -> Moto {
        Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", free.to_string())])
    }

    fn start_with(env: &[(&str, String)]) -> Moto {
        let server = venv().join("bin/moto_server");
        assert!(server.exists(), "{} is missing: run `make test`, which installs it", server.display());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto { child, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Variables for coffer (moto accepts any credentials).
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("COFFER_S3_REGION", "us-east-1"),
            ("COFFER_S3_PATH_STYLE", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([("COFFER_S3_ENDPOINT".to_string(), self.endpoint())])
        .collect()
    }

    /// Runs a boto3 snippet against this server (`s3` is a client).
    pub fn boto3(&self, code: &str) {
        self.boto3_out(code);
    }

    /// `boto3`, returning what the snippet printed.
    pub fn boto3_out(&self, code: &str) -> String {
        let script = format!(
            "import boto3\ns3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1', \
             aws_access_key_id='testing', aws_secret_access_key='testing')\n{code}\n",
            self.endpoint()
        );
        let out = Command::new(venv().join("bin/python")).arg("-c").arg(script).output().unwrap();
        assert!(out.status.success(), "boto3: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
