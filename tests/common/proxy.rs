//! A fault-injecting HTTP proxy in front of a real S3 server (Garage): one
//! request per connection (it adds `Connection: close`), so each request can
//! be answered 503 SlowDown, cut mid-response, or passed through and counted.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct State {
    /// Answer this many upcoming requests whose method matches with 503 SlowDown.
    pub fail_503: AtomicUsize,
    pub fail_method: Mutex<String>,
    /// Cut this many upcoming GETs of pack data after `cut_after` response bytes.
    pub cut_gets: AtomicUsize,
    pub cut_after: AtomicUsize,
    /// Flip one byte in the body of this many upcoming PUTs of pack data
    /// (a whole object or a multipart part): damage on the way to the server.
    pub flip_puts: AtomicUsize,
    pub flipped: AtomicUsize,
    /// Hold every PUT whose path contains this (read its head, forward
    /// nothing) until it is cleared: a client caught mid-upload, to kill.
    pub stall_puts: Mutex<Option<String>>,
    pub stalled: AtomicUsize,
    /// Refuse every connection (the server "went away").
    pub down: std::sync::atomic::AtomicBool,
    pub injected_503: AtomicUsize,
    pub cut_done: AtomicUsize,
    /// Bytes from the server to the client.
    pub bytes_down: AtomicU64,
    /// "METHOD path" of every request passed through.
    pub requests: Mutex<Vec<String>>,
}

pub struct Proxy {
    pub addr: SocketAddr,
    pub state: Arc<State>,
}

impl Proxy {
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let s = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = handle(client, upstream, &s);
                });
            }
        });
        Proxy { addr, state }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn fail_next(&self, method: &str, n: usize) {
        *self.state.fail_method.lock().unwrap() = method.to_string();
        self.state.fail_503.store(n, Ordering::SeqCst);
    }

    pub fn reset_counters(&self) {
        self.state.bytes_down.store(0, Ordering::SeqCst);
        self.state.requests.lock().unwrap().clear();
    }
}

fn read_head(client: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 4096];
    loop {
        let n = client.read(&mut byte)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&byte[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.len() > 64 * 1024 {
            return Ok(buf);
        }
    }
}

fn handle(mut client: TcpStream, upstream: SocketAddr, s: &State) -> std::io::Result<()> {
    if s.down.load(Ordering::SeqCst) {
        return client.shutdown(Shutdown::Both);
    }
    let buf = read_head(&mut client)?;
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4).unwrap_or(buf.len());
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let first = head.lines().next().unwrap_or("").to_string();
    let mut parts = first.split(' ');
    let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());

    let stall = s.stall_puts.lock().unwrap().clone();
    if method == "PUT" && stall.is_some_and(|p| path.contains(&p)) {
        s.stalled.fetch_add(1, Ordering::SeqCst);
        while s.stall_puts.lock().unwrap().is_some() {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        return client.shutdown(Shutdown::Both);
    }

    let fail_method = s.fail_method.lock().unwrap().clone();
    if method == fail_method
        && s.fail_503.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    {
        s.injected_503.fetch_add(1, Ordering::SeqCst);
        // Drain the body first, so the client reads our answer, not a reset.
        let len: usize = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
            .unwrap_or(0);
        let mut remaining = len.saturating_sub(buf.len() - head_end);
        let mut sink = [0u8; 65536];
        while remaining > 0 {
            let n = client.read(&mut sink[..remaining.min(65536)])?;
            if n == 0 {
                break;
            }
            remaining -= n;
        }
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
        write!(
            client,
            "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        return client.shutdown(Shutdown::Both);
    }
    let class = head.lines().find_map(|l| {
        let lower = l.to_ascii_lowercase();
        lower.strip_prefix("x-amz-storage-class:").map(|v| v.trim().to_uppercase())
    });
    s.requests.lock().unwrap().push(match class {
        Some(c) => format!("{method} {path} storage-class={c}"),
        None => format!("{method} {path}"),
    });

    // One request per connection: ask the server to close after answering.
    let mut forwarded = String::new();
    for line in head[..head_end].split("\r\n") {
        if line.to_ascii_lowercase().starts_with("connection:") || line.is_empty() {
            continue;
        }
        forwarded.push_str(line);
        forwarded.push_str("\r\n");
    }
    forwarded.push_str("Connection: close\r\n\r\n");
    let mut server = TcpStream::connect(upstream)?;
    server.write_all(forwarded.as_bytes())?;
    let flip = method == "PUT"
        && path.contains("/data/")
        && s.flip_puts.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    if flip {
        let len: usize = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
            .unwrap_or(0);
        let mut body = buf[head_end..].to_vec();
        while body.len() < len {
            let mut more = vec![0u8; len - body.len()];
            let n = client.read(&mut more)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&more[..n]);
        }
        if !body.is_empty() {
            let at = body.len() / 2;
            body[at] ^= 0x01;
            s.flipped.fetch_add(1, Ordering::SeqCst);
        }
        server.write_all(&body)?;
    } else {
        server.write_all(&buf[head_end..])?;
    }

    let cut = method == "GET"
        && path.contains("/data/")
        && s.cut_gets.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    let limit = if cut { s.cut_after.load(Ordering::SeqCst) as u64 } else { u64::MAX };

    let mut c2 = client.try_clone()?;
    let mut s2 = server.try_clone()?;
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut s2);
        let _ = s2.shutdown(Shutdown::Write);
    });
    let mut sent: u64 = 0;
    let mut chunk = [0u8; 65536];
    loop {
        let n = match server.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let n = (n as u64).min(limit - sent) as usize;
        if client.write_all(&chunk[..n]).is_err() {
            break;
        }
        sent += n as u64;
        s.bytes_down.fetch_add(n as u64, Ordering::SeqCst);
        if sent >= limit {
            s.cut_done.fetch_add(1, Ordering::SeqCst);
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
    let _ = up.join();
    Ok(())
}
