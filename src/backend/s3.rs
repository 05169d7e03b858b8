//! S3 backend (AWS S3 and S3-compatible stores: Garage, MinIO, Ceph RGW, R2),
//! on aws-sdk-s3, behind the same synchronous `Backend` trait: each call
//! runs on a private tokio runtime.
//!
//! Objects are whole and immutable, as locally. Small objects go up in one
//! PUT; larger ones (packs) as multipart uploads with a bounded number of
//! parts in flight. A failed multipart upload is aborted; if the server is
//! unreachable then, the upload is recorded in a local file and aborted by
//! the next coffer run once the process that started it is gone.
//!
//! Integrity and compatibility: every upload carries Content-MD5 as a
//! header (the server refuses a body damaged on the way; Object Lock buckets
//! require it); the SDK's own request checksums only when an operation
//! requires them (several S3-compatible stores reject aws-chunked trailers);
//! bodies of known length held in memory (retryable); path-style addressing
//! on demand.

use super::{Backend, BackendError, BackendResult, Kind, ObjectInfo};
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption, StorageClass};
use bytes::Bytes;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct S3Options {
    /// e.g. `http://127.0.0.1:3900` for Garage; None: AWS.
    pub endpoint: Option<String>,
    /// None: from the AWS environment/profile, else `us-east-1`.
    pub region: Option<String>,
    /// `https://endpoint/bucket/key` instead of `https://bucket.endpoint/key`.
    pub path_style: bool,
    pub storage_class: Option<String>,
    /// Server-side encryption: `AES256` or `aws:kms`.
    pub sse: Option<String>,
    pub sse_kms_key_id: Option<String>,
    /// Multipart part size; objects up to this size go up in one PUT.
    pub part_size: usize,
    /// Parts of one object in flight at once.
    pub concurrency: usize,
    /// Attempts per request (5xx, throttling, connection errors).
    pub max_attempts: u32,
    /// Access key id and secret; None: the AWS chain (environment,
    /// profile, instance metadata). For embedding; the CLI uses the chain.
    pub static_credentials: Option<(String, String)>,
    /// An AWS credentials file (and its section) that supplies the keys
    /// before the chain: for runs whose environment is not a login's.
    pub credentials_file: Option<std::path::PathBuf>,
    pub credentials_profile: Option<String>,
    pub retention: Option<Retention>,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            endpoint: None,
            region: None,
            path_style: false,
            storage_class: None,
            sse: None,
            sse_kms_key_id: None,
            part_size: 8 * 1024 * 1024,
            concurrency: 4,
            max_attempts: 6,
            static_credentials: None,
            credentials_file: None,
            credentials_profile: None,
            retention: None,
        }
    }
}

/// Applies the settings every new object gets (storage class, server-side
/// encryption) to a PutObject or CreateMultipartUpload request: two builder
/// types with the same setters, so one list of settings serves both.
/// `$kind`'s storage class: only packs take `--storage-class`; locks, the
/// config, keys, indexes and manifests stay in the bucket's default class,
/// which reads back at once (an archive class would make every backup fail
/// on its own lock, and every listing on the manifests).
macro_rules! with_object_settings {
    ($req:expr, $opts:expr, $kind:expr) => {{
        let mut req = $req;
        if let (Some(c), Kind::Pack) = (&$opts.storage_class, $kind) {
            req = req.storage_class(StorageClass::from(c.as_str()));
        }
        if let Some(s) = &$opts.sse {
            req = req.server_side_encryption(ServerSideEncryption::from(s.as_str()));
        }
        if let Some(k) = &$opts.sse_kms_key_id {
            req = req.ssekms_key_id(k);
        }
        // Object Lock: what a snapshot is made of stays undeletable (locks,
        // keys and config stay deletable: unlock, key remove).
        if let (Some(r), Kind::Pack | Kind::Index | Kind::Snapshot | Kind::Wal) = (&$opts.retention, $kind) {
            let until = std::time::SystemTime::now() + r.period;
            req = req
                .object_lock_mode(aws_sdk_s3::types::ObjectLockMode::from(r.mode.as_str()))
                .object_lock_retain_until_date(aws_sdk_s3::primitives::DateTime::from(until));
        }
        req
    }};
}

/// S3 Object Lock retention set on every pack, index, manifest and WAL
/// file written (`--retention`).
#[derive(Debug, Clone)]
pub struct Retention {
    /// GOVERNANCE (a user with s3:BypassGovernanceRetention may still
    /// delete) or COMPLIANCE (nobody may, the root account included).
    pub mode: String,
    pub period: Duration,
}

pub struct S3 {
    runtime: tokio::runtime::Runtime,
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    opts: S3Options,
    /// `s3://bucket/prefix at endpoint`, for messages.
    shown: String,
}

/// Content-MD5 of a request body: the server refuses a body damaged on the
/// way (BadDigest) instead of storing it, and buckets with a default Object
/// Lock retention require it (or a checksum header) on every upload.
fn content_md5(body: &[u8]) -> String {
    use base64::Engine;
    use md5::Digest;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body))
}

/// Splits `s3://bucket/prefix`.
pub fn parse_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return None;
    }
    Some((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

impl S3 {
    pub fn new(url: &str, opts: S3Options) -> BackendResult<S3> {
        let (bucket, prefix) =
            parse_url(url).ok_or_else(|| BackendError::Other(format!("{url:?} is not an s3://bucket/prefix URL")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| BackendError::Other(format!("cannot start the S3 client runtime: {e}")))?;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(r) = &opts.region {
            loader = loader.region(Region::new(r.clone()));
        }
        let sdk = runtime.block_on(loader.load());
        let retry = aws_config::retry::RetryConfig::standard()
            .with_max_attempts(opts.max_attempts.max(1))
            .with_initial_backoff(Duration::from_millis(200));
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .build();
        let mut config = aws_sdk_s3::config::Builder::from(&sdk)
            .retry_config(retry)
            .timeout_config(timeouts)
            .force_path_style(opts.path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if sdk.region().is_none() {
            config = config.region(Region::new("us-east-1"));
        }
        if let Some(e) = &opts.endpoint {
            config = config.endpoint_url(e.clone());
        }
        if let Some(file) = &opts.credentials_file {
            // Checked here: the SDK would only fail at the first request, vaguely.
            std::fs::File::open(file)
                .map_err(|e| BackendError::Other(format!("S3 credentials file {}: {e}", file.display())))?;
            use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
            let files = EnvConfigFiles::builder()
                .with_file(EnvConfigFileKind::Credentials, file)
                .include_default_config_file(false)
                .build();
            let provider = aws_config::profile::ProfileFileCredentialsProvider::builder()
                .profile_files(files)
                .profile_name(opts.credentials_profile.clone().unwrap_or_else(|| "default".into()))
                .build();
            config = config.credentials_provider(provider);
        }
        if let Some((id, secret)) = &opts.static_credentials {
            config =
                config.credentials_provider(aws_sdk_s3::config::Credentials::new(id, secret, None, None, "coffer"));
        }
        let client = aws_sdk_s3::Client::from_conf(config.build());
        let shown = format!("s3://{bucket}/{prefix} at {}", opts.endpoint.clone().unwrap_or_else(|| "AWS S3".into()));
        let s3 = S3 { runtime, client, bucket, prefix, opts, shown };
        s3.abort_abandoned_uploads();
        Ok(s3)
    }

    fn key(&self, kind: Kind, name: &str) -> String {
        let path = kind.object_path(name);
        if self.prefix.is_empty() {
            path
        } else {
            format!("{}/{}", self.prefix, path)
        }
    }

    /// The objects of `kind` whose names start with `under` (a WAL stanza's
    /// `folder/`, or everything), in one paginated listing.
    fn list_prefix(&self, kind: Kind, under: &str) -> BackendResult<Vec<ObjectInfo>> {
        let base = self.dir_prefix(kind);
        let prefix = format!("{base}{under}");
        self.runtime.block_on(async {
            let mut out = Vec::new();
            let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(&prefix).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| self.error("ListObjectsV2", &prefix, &e))?;
                for o in page.contents() {
                    let Some(key) = o.key() else { continue };
                    // WAL names keep their stanza folder; other kinds are flat
                    // (packs fan out by name, which the name repeats).
                    let name = match kind {
                        Kind::Wal => key.strip_prefix(&base).unwrap_or(key),
                        _ => key.rsplit('/').next().unwrap_or(key),
                    };
                    if name.rsplit('/').next().unwrap_or(name).starts_with('.') {
                        continue;
                    }
                    out.push(ObjectInfo {
                        name: name.to_string(),
                        size: o.size().unwrap_or(0).max(0) as u64,
                        modified: o.last_modified().and_then(|t| std::time::SystemTime::try_from(*t).ok()),
                    });
                }
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
    }

    fn dir_prefix(&self, kind: Kind) -> String {
        let dir = format!("{}/", kind.dir());
        if self.prefix.is_empty() {
            dir
        } else {
            format!("{}/{}", self.prefix, dir)
        }
    }

    /// One line naming the repository, the operation, the key and the cause.
    fn error<E>(&self, op: &str, key: &str, e: &SdkError<E>) -> BackendError
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
    {
        let detail = match e {
            SdkError::ServiceError(s) => {
                let err = s.err();
                let code = err.code().unwrap_or("error");
                let msg = err.message().unwrap_or("");
                format!("{code} (HTTP {}) {msg}", s.raw().status().as_u16())
            }
            other => DisplayErrorContext(other).to_string(),
        };
        BackendError::Other(format!("{}: {op} {key}: {}", self.shown, detail.trim()).replace('\n', " "))
    }

    fn is_not_found<E: ProvideErrorMetadata>(e: &SdkError<E>) -> bool {
        match e {
            // A missing bucket is a setting at fault, not a missing object.
            SdkError::ServiceError(s) if s.err().code() == Some("NoSuchBucket") => false,
            SdkError::ServiceError(s) => {
                s.raw().status().as_u16() == 404 || matches!(s.err().code(), Some("NoSuchKey" | "NotFound"))
            }
            _ => false,
        }
    }

    async fn put_single(&self, kind: Kind, key: &str, body: Bytes) -> BackendResult<()> {
        let md5 = content_md5(&body);
        let req = self.client.put_object().bucket(&self.bucket).key(key).content_md5(md5).body(ByteStream::from(body));
        let req = with_object_settings!(req, self.opts, kind);
        req.send().await.map_err(|e| self.error("PUT", key, &e))?;
        Ok(())
    }

    async fn put_multipart(&self, kind: Kind, key: &str, body: Bytes) -> BackendResult<()> {
        let req = self.client.create_multipart_upload().bucket(&self.bucket).key(key);
        let req = with_object_settings!(req, self.opts, kind);
        let created = req.send().await.map_err(|e| self.error("CreateMultipartUpload", key, &e))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| BackendError::Other(format!("{}: CreateMultipartUpload {key}: no upload id", self.shown)))?
            .to_string();
        let record = PendingUpload::record(&self.pending_scope(), key, &upload_id);

        let result = self.upload_parts(key, &upload_id, body).await;
        match result {
            Ok(parts) => {
                let done = CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
                let completed = self
                    .client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .multipart_upload(done)
                    .send()
                    .await;
                match completed {
                    Ok(_) => {
                        PendingUpload::forget(record);
                        Ok(())
                    }
                    Err(e) => {
                        let err = self.error("CompleteMultipartUpload", key, &e);
                        self.abort(key, &upload_id, record).await;
                        Err(err)
                    }
                }
            }
            Err(e) => {
                self.abort(key, &upload_id, record).await;
                Err(e)
            }
        }
    }

    /// Uploads the parts with at most `concurrency` in flight.
    async fn upload_parts(&self, key: &str, upload_id: &str, body: Bytes) -> BackendResult<Vec<CompletedPart>> {
        let part_size = self.opts.part_size.max(5 * 1024 * 1024);
        let semaphore = Arc::new(tokio::sync::Semaphore::new(self.opts.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        let count = body.len().div_ceil(part_size);
        for i in 0..count {
            let permit = semaphore.clone().acquire_owned().await.map_err(|e| BackendError::Other(e.to_string()))?;
            let part = body.slice(i * part_size..((i + 1) * part_size).min(body.len()));
            let request = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(i as i32 + 1)
                .content_md5(content_md5(&part))
                .body(ByteStream::from(part));
            tasks.spawn(async move {
                let out = request.send().await;
                drop(permit);
                (i, out)
            });
        }
        let mut parts = Vec::with_capacity(count);
        while let Some(joined) = tasks.join_next().await {
            let (i, out) = joined.map_err(|e| BackendError::Other(format!("upload task: {e}")))?;
            let out = out.map_err(|e| self.error(&format!("UploadPart {}", i + 1), key, &e))?;
            parts.push(
                CompletedPart::builder().part_number(i as i32 + 1).set_e_tag(out.e_tag().map(str::to_string)).build(),
            );
        }
        parts.sort_by_key(|p| p.part_number());
        Ok(parts)
    }

    /// The multipart uploads open under the repository's prefix.
    async fn open_uploads(&self) -> BackendResult<Vec<aws_sdk_s3::types::MultipartUpload>> {
        let prefix = if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix) };
        let out = self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(&prefix)
            .send()
            .await
            .map_err(|e| self.error("ListMultipartUploads", &prefix, &e))?;
        Ok(out.uploads().to_vec())
    }

    async fn abort(&self, key: &str, upload_id: &str, record: Option<PathBuf>) {
        let aborted =
            self.client.abort_multipart_upload().bucket(&self.bucket).key(key).upload_id(upload_id).send().await;
        if aborted.is_ok() {
            PendingUpload::forget(record);
        }
        // Otherwise the record stays, for the next run to abort.
    }

    fn pending_scope(&self) -> String {
        format!("{}|{}|{}", self.opts.endpoint.clone().unwrap_or_default(), self.bucket, self.prefix)
    }

    /// Aborts uploads recorded by coffer processes that died with them open.
    fn abort_abandoned_uploads(&self) {
        for (path, key, upload_id) in PendingUpload::abandoned(&self.pending_scope()) {
            let result = self.runtime.block_on(
                self.client.abort_multipart_upload().bucket(&self.bucket).key(&key).upload_id(&upload_id).send(),
            );
            let gone = match &result {
                Ok(_) => true,
                Err(SdkError::ServiceError(s)) => s.raw().status().as_u16() == 404,
                Err(_) => false,
            };
            if gone {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    async fn get_once(&self, key: &str, range: Option<(u64, u64)>) -> Result<Vec<u8>, GetError> {
        let mut req = self.client.get_object().bucket(&self.bucket).key(key);
        if let Some((offset, length)) = range {
            req = req.range(format!("bytes={}-{}", offset, offset + length - 1));
        }
        let out = match req.send().await {
            Ok(o) => o,
            Err(e) if Self::is_not_found(&e) => return Err(GetError::NotFound),
            Err(SdkError::ServiceError(s)) if s.raw().status().as_u16() == 416 => return Err(GetError::Range),
            Err(e) => return Err(GetError::Final(self.error("GET", key, &e))),
        };
        // A connection cut while the body streams is not retried by the
        // SDK (the response had begun): the caller retries it.
        match out.body.collect().await {
            Ok(b) => Ok(b.into_bytes().to_vec()),
            Err(e) => Err(GetError::Body(format!("{}: GET {key}: body: {e}", self.shown))),
        }
    }

    async fn get_retrying(&self, key: &str, range: Option<(u64, u64)>) -> Result<Vec<u8>, GetError> {
        let mut delay = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            match self.get_once(key, range).await {
                Err(GetError::Body(msg)) if attempt >= self.opts.max_attempts => {
                    return Err(GetError::Final(BackendError::Other(msg)))
                }
                Err(GetError::Body(_)) => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn size_of(&self, key: &str) -> BackendResult<u64> {
        self.head(key).await.map(|(size, _)| size)
    }

    /// An object's size, and until when Object Lock retains it (if it does).
    async fn head(&self, key: &str) -> BackendResult<(u64, Option<std::time::SystemTime>)> {
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(h) => Ok((
                h.content_length().unwrap_or(0).max(0) as u64,
                h.object_lock_retain_until_date().and_then(|t| std::time::SystemTime::try_from(*t).ok()),
            )),
            Err(e) if Self::is_not_found(&e) => Err(BackendError::NotFound { path: self.describe(key) }),
            Err(e) => Err(self.error("HEAD", key, &e)),
        }
    }

    fn describe(&self, key: &str) -> String {
        format!("{} object {key}", self.shown)
    }
}

enum GetError {
    NotFound,
    Range,
    Body(String),
    Final(BackendError),
}

impl Backend for S3 {
    fn location(&self) -> String {
        self.shown.clone()
    }

    fn create(&self) -> BackendResult<()> {
        self.runtime.block_on(async {
            match self.client.head_bucket().bucket(&self.bucket).send().await {
                Ok(_) => Ok(()),
                Err(e) if Self::is_not_found(&e) => {
                    Err(BackendError::Other(format!("{}: bucket {} does not exist", self.shown, self.bucket)))
                }
                Err(e) => Err(self.error("HeadBucket", &self.bucket, &e)),
            }
        })
    }

    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> BackendResult<()> {
        let key = self.key(kind, name);
        let body = Bytes::copy_from_slice(data);
        self.runtime.block_on(async {
            if body.len() <= self.opts.part_size {
                self.put_single(kind, &key, body).await
            } else {
                self.put_multipart(kind, &key, body).await
            }
        })
    }

    fn get(&self, kind: Kind, name: &str) -> BackendResult<Vec<u8>> {
        let key = self.key(kind, name);
        match self.runtime.block_on(self.get_retrying(&key, None)) {
            Ok(v) => Ok(v),
            Err(GetError::NotFound) => Err(BackendError::NotFound { path: self.describe(&key) }),
            Err(GetError::Range) => Err(BackendError::Other(format!("{}: GET {key}: unexpected 416", self.shown))),
            Err(GetError::Body(m)) => Err(BackendError::Other(m)),
            Err(GetError::Final(e)) => Err(e),
        }
    }

    fn get_range(&self, kind: Kind, name: &str, offset: u64, length: u64) -> BackendResult<Vec<u8>> {
        let key = self.key(kind, name);
        if length == 0 {
            return Ok(Vec::new());
        }
        self.runtime.block_on(async {
            let truncated =
                |size: u64| BackendError::Truncated { path: self.describe(&key), offset, end: offset + length, size };
            match self.get_retrying(&key, Some((offset, length))).await {
                Ok(v) if v.len() as u64 == length => Ok(v),
                Ok(v) => Err(truncated(offset + v.len() as u64)),
                Err(GetError::NotFound) => Err(BackendError::NotFound { path: self.describe(&key) }),
                Err(GetError::Range) => Err(truncated(self.size_of(&key).await?)),
                Err(GetError::Body(m)) => Err(BackendError::Other(m)),
                Err(GetError::Final(e)) => Err(e),
            }
        })
    }

    fn open(&self, kind: Kind, name: &str) -> BackendResult<Box<dyn Read + Send>> {
        // Objects are at most a pack (tens of MiB): reading whole is bounded.
        Ok(Box::new(std::io::Cursor::new(self.get(kind, name)?)))
    }

    fn list(&self, kind: Kind) -> BackendResult<Vec<ObjectInfo>> {
        self.list_prefix(kind, "")
    }

    fn list_under(&self, kind: Kind, folder: &str) -> BackendResult<Vec<ObjectInfo>> {
        self.list_prefix(kind, &format!("{folder}/"))
    }

    fn delete(&self, kind: Kind, name: &str) -> BackendResult<()> {
        let key = self.key(kind, name);
        self.runtime.block_on(async {
            // S3 deletes a missing key without complaint; the contract says NotFound.
            let (_, retained) = self.head(&key).await?;
            // A versioned bucket would take the DELETE (a delete marker) and keep
            // the locked version: coffer leaves it listed, for a later run.
            if let Some(until) = retained.filter(|u| *u > std::time::SystemTime::now()) {
                return Err(BackendError::Retained { path: self.describe(&key), until });
            }
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| self.error("DELETE", &key, &e))?;
            Ok(())
        })
    }

    fn holds_anything(&self) -> BackendResult<bool> {
        let prefix = if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix) };
        self.runtime.block_on(async {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .max_keys(1)
                .send()
                .await
                .map_err(|e| self.error("ListObjectsV2", &prefix, &e))?;
            Ok(page.key_count().unwrap_or(0) > 0 || !page.contents().is_empty())
        })
    }

    fn enclosing_repository(&self) -> BackendResult<Option<String>> {
        // Every prefix above this one, the bucket's root included.
        let parts: Vec<&str> = self.prefix.split('/').filter(|p| !p.is_empty()).collect();
        for n in (0..parts.len()).rev() {
            let above = parts[..n].join("/");
            let key = if above.is_empty() { "config".to_string() } else { format!("{above}/config") };
            match self.runtime.block_on(self.get_retrying(&key, None)) {
                Ok(_) => return Ok(Some(format!("s3://{}/{above}", self.bucket))),
                Err(GetError::NotFound) => {}
                Err(GetError::Final(e)) => return Err(e),
                Err(GetError::Body(m)) => return Err(BackendError::Other(m)),
                Err(GetError::Range) => {}
            }
        }
        Ok(None)
    }

    fn retained_until(&self, kind: Kind, name: &str) -> BackendResult<Option<std::time::SystemTime>> {
        let key = self.key(kind, name);
        self.runtime.block_on(self.head(&key)).map(|(_, until)| until)
    }

    fn versioning(&self) -> Option<String> {
        // Best effort: a store without versioning may not know the call.
        match self.runtime.block_on(self.client.get_bucket_versioning().bucket(&self.bucket).send()) {
            Ok(out) => out.status().map(|s| s.as_str().to_string()),
            // Some stores answer 200 under another XML root than AWS's, which
            // the SDK refuses to parse: the status is read from the body.
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 200 => {
                let body = std::str::from_utf8(e.raw().body().bytes()?).ok()?;
                let status = body.split("<Status>").nth(1)?.split("</Status>").next()?.trim();
                (!status.is_empty()).then(|| status.to_string())
            }
            Err(_) => None,
        }
    }

    /// Objects with an open multipart upload under the repository's prefix.
    fn put_requests(&self, size: u64) -> u64 {
        if size <= self.opts.part_size as u64 {
            return 1;
        }
        // As put_multipart cuts it: CreateMultipartUpload, the parts, CompleteMultipartUpload.
        let part = self.opts.part_size.max(5 * 1024 * 1024) as u64;
        size.div_ceil(part) + 2
    }

    fn heads_per_delete(&self) -> u64 {
        1
    }

    fn read_parallelism(&self) -> usize {
        // Round trips, not cores, bound a restore's GETs of small chunks
        // (969 files of a base backup from Garage: 17 s with 2 workers, 3 s with 16).
        (self.opts.concurrency * 4).clamp(8, 32)
    }

    fn list_requests(&self, listed: usize) -> u64 {
        // ListObjectsV2 pages hold up to 1000 keys.
        (listed as u64).div_ceil(1000).max(1)
    }

    fn incomplete_uploads(&self) -> BackendResult<Vec<String>> {
        let uploads = self.runtime.block_on(self.open_uploads())?;
        Ok(uploads.iter().filter_map(|u| u.key().map(str::to_string)).collect())
    }

    fn abort_uploads_older_than(&self, age: Duration) -> BackendResult<usize> {
        self.runtime.block_on(async {
            let cutoff = std::time::SystemTime::now() - age;
            let mut aborted = 0;
            for u in self.open_uploads().await? {
                let (Some(key), Some(id)) = (u.key(), u.upload_id()) else { continue };
                // An unknown start time is not old enough to abort on a guess.
                let old =
                    u.initiated().and_then(|t| std::time::SystemTime::try_from(*t).ok()).is_some_and(|t| t <= cutoff);
                if old {
                    self.client
                        .abort_multipart_upload()
                        .bucket(&self.bucket)
                        .key(key)
                        .upload_id(id)
                        .send()
                        .await
                        .map_err(|e| self.error("AbortMultipartUpload", key, &e))?;
                    aborted += 1;
                }
            }
            Ok(aborted)
        })
    }
}

/// Local records of open multipart uploads, one file per upload, named by
/// the process that opened it; see the module comment.
struct PendingUpload;

impl PendingUpload {
    fn dir() -> Option<PathBuf> {
        Some(crate::cache_dir()?.join("s3-uploads"))
    }

    fn record(scope: &str, key: &str, upload_id: &str) -> Option<PathBuf> {
        let dir = Self::dir()?;
        std::fs::create_dir_all(&dir).ok()?;
        let id = hex::encode(&crate::crypto::sha256(format!("{scope}|{key}|{upload_id}").as_bytes())[..8]);
        let path = dir.join(format!("{}-{id}.json", std::process::id()));
        let body = serde_json::json!({ "scope": scope, "key": key, "upload_id": upload_id });
        std::fs::write(&path, body.to_string()).ok()?;
        Some(path)
    }

    fn forget(record: Option<PathBuf>) {
        if let Some(p) = record {
            let _ = std::fs::remove_file(p);
        }
    }

    /// (record, key, upload id) of this scope whose process is gone.
    fn abandoned(scope: &str) -> Vec<(PathBuf, String, String)> {
        let Some(dir) = Self::dir() else { return Vec::new() };
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if crate::process_exists(pid) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if v["scope"] != scope {
                continue;
            }
            if let (Some(k), Some(u)) = (v["key"].as_str(), v["upload_id"].as_str()) {
                out.push((path, k.to_string(), u.to_string()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(parse_url("s3://b/p/q/"), Some(("b".into(), "p/q".into())));
        assert_eq!(parse_url("s3://b"), Some(("b".into(), "".into())));
        assert_eq!(parse_url("s3:///x"), None);
        assert_eq!(parse_url("/local"), None);
    }
}
