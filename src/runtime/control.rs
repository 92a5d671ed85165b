//! The control socket (`cluster.control_socket`): how `failoverd status`, `migrate`, `fence`... talk to the
//! running daemon.
//!
//! Protocol: line-delimited JSON over a Unix stream socket; one request per line, one reply per line, any
//! number of requests per connection.
//!
//! - `{"request":"status"}` → `{"ok":true,"status":<the engine's Status>,"runtime":{...}}`, where `runtime`
//!   holds what only the driver knows (its clock for computing ages, datagram counters, commands running).
//! - Admin requests are the engine's `AdminRequest` in its serde form — `{"request":"migrate","target":"MDT0",
//!   "to":"mds2"}`, `{"request":"confirm_fenced","node":"mds1"}`, `{"request":"fence","node":"mds1",
//!   "action":"off"}` (`on`, `status`, `reboot`; the capitalised forms are read too), `{"request":"maintenance","on":true}`,
//!   `{"request":"override_wait_for_all"}`, `{"request":"leave"}` — and are answered with the engine's reply:
//!   `{"ok":true,"message":"..."}` or `{"ok":false,"error":"..."}`. A fence request is answered when the fence
//!   job ends, which can take minutes.
//! - Anything else gets `{"ok":false,"error":"..."}` and changes nothing: malformed JSON, an unknown request,
//!   a line longer than [`MAX_LINE`] bytes (the connection is then closed), a client that is not allowed.
//!
//! Who may connect: the peer's uid is read with `SO_PEERCRED`; root and `cluster.control_allowed_uids` are
//! served, anyone else gets an error and is disconnected. The socket file is mode 0600 when only root is
//! allowed; when other uids are listed it is 0666 (they could not connect otherwise) and `SO_PEERCRED` alone
//! decides. A stale socket file from a crashed daemon is replaced; a live one (a daemon answers on it) makes
//! this start fail, which also keeps a second daemon from running on the node.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::engine::{AdminError, AdminRequest};

use super::{Result, RuntimeError};

/// Longest request line accepted, in bytes (without the newline).
pub const MAX_LINE: usize = 64 * 1024;

/// A connection idle this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Connections served at once; more are refused with an error.
const MAX_CONNECTIONS: usize = 32;

/// A parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlRequest {
    /// `{"request":"status"}`.
    Status,
    /// Anything the engine handles as `Input::Admin`.
    Admin(AdminRequest),
}

/// A request on its way to the daemon loop, with the channel its JSON reply goes back on.
#[derive(Debug)]
pub struct Pending {
    pub request: ControlRequest,
    pub reply: oneshot::Sender<Value>,
}

/// The error reply.
pub fn error_reply(msg: impl Into<String>) -> Value {
    json!({ "ok": false, "error": msg.into() })
}

/// The reply to an admin request, from the engine's result: a refusal carries its text in `error` and its
/// typed form beside it (`kind` and the fields of [`AdminError`]), which the CLI matches for its exit status.
pub fn admin_reply(result: Result<String, AdminError>) -> Value {
    match result {
        Ok(message) => json!({ "ok": true, "message": message }),
        Err(error) => {
            let mut v = serde_json::to_value(&error).unwrap_or_else(|_| json!({}));
            v["ok"] = json!(false);
            v["error"] = json!(error.to_string());
            v
        }
    }
}

/// Parse one request line.
pub fn parse_request(line: &[u8]) -> Result<ControlRequest, String> {
    let v: Value = serde_json::from_slice(line).map_err(|e| format!("malformed request (not JSON): {e}"))?;
    let name = v
        .get("request")
        .and_then(Value::as_str)
        .ok_or_else(|| "malformed request: expected a JSON object with a \"request\" field".to_string())?;
    if name == "status" {
        return Ok(ControlRequest::Status);
    }
    serde_json::from_value::<AdminRequest>(v.clone()).map(ControlRequest::Admin).map_err(|e| format!("bad request {name:?}: {e}"))
}

/// The bound control socket. Dropping it removes the socket file (if it is still the one bound here).
#[derive(Debug)]
pub struct ControlSocket {
    path: PathBuf,
    inode: (u64, u64),
    listener: Option<UnixListener>,
    allowed_uids: Arc<Vec<u32>>,
}

impl ControlSocket {
    /// Bind at `path` (from `cluster.control_socket`). Must run inside a tokio runtime.
    pub fn bind(path: &Path, allowed_uids: &[u32]) -> Result<ControlSocket> {
        let err = |what: String| RuntimeError::io(format!("cluster.control_socket {}: {what}", path.display()));
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(parent)
                    .map_err(|e| err(format!("cannot create directory {}: {e}", parent.display())))?;
            }
        }
        match std::fs::symlink_metadata(path) {
            Ok(m) => {
                use std::os::unix::fs::FileTypeExt;
                if !m.file_type().is_socket() {
                    return Err(err("exists and is not a socket; not removing it".into()));
                }
                if let Ok(stream) = std::os::unix::net::UnixStream::connect(path) {
                    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
                    let holder = getsockopt(&stream, PeerCredentials)
                        .map(|c| format!(" (pid {}{})", c.pid(), super::state::process_line(c.pid() as u32)))
                        .unwrap_or_default();
                    return Err(err(format!("another failoverd is running on this node{holder} (it answers on this socket)")));
                }
                std::fs::remove_file(path).map_err(|e| err(format!("cannot remove the stale socket: {e}")))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(format!("cannot access: {e}"))),
        }
        let std_listener = std::os::unix::net::UnixListener::bind(path).map_err(|e| err(format!("cannot bind: {e}")))?;
        let mode = if allowed_uids.is_empty() { 0o600 } else { 0o666 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| err(format!("cannot set mode {mode:o}: {e}")))?;
        std_listener.set_nonblocking(true).map_err(|e| err(e.to_string()))?;
        let listener = UnixListener::from_std(std_listener).map_err(|e| err(e.to_string()))?;
        let m = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        Ok(ControlSocket {
            path: path.to_path_buf(),
            inode: (m.dev(), m.ino()),
            listener: Some(listener),
            allowed_uids: Arc::new(allowed_uids.to_vec()),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Start accepting connections; every valid request is sent to `tx`. Stops when `tx`'s receiver is gone.
    pub fn spawn(&mut self, tx: mpsc::Sender<Pending>) {
        let Some(listener) = self.listener.take() else { return };
        let allowed = self.allowed_uids.clone();
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        tokio::spawn(async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    tokio::spawn(refuse(stream, "too many control connections; try again"));
                    continue;
                };
                let allowed = allowed.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    serve(stream, &allowed, tx).await;
                    drop(permit);
                });
            }
        });
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if (m.dev(), m.ino()) == self.inode {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

async fn refuse(mut stream: UnixStream, why: &str) {
    let _ = write_reply(&mut stream, &error_reply(why)).await;
    let _ = stream.shutdown().await;
}

async fn write_reply<W: AsyncWriteExt + Unpin>(w: &mut W, v: &Value) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(v).unwrap_or_else(|_| b"{\"ok\":false,\"error\":\"internal error\"}".to_vec());
    line.push(b'\n');
    w.write_all(&line).await?;
    w.flush().await
}

async fn serve(stream: UnixStream, allowed: &[u32], tx: mpsc::Sender<Pending>) {
    let uid = match getsockopt(&stream, PeerCredentials) {
        Ok(c) => c.uid(),
        Err(e) => {
            tracing::warn!(error = %e, "control socket: cannot read peer credentials; refusing");
            return refuse(stream, "cannot verify your credentials").await;
        }
    };
    if uid != 0 && !allowed.contains(&uid) {
        tracing::warn!(uid, "control socket: refused a client whose uid is not root nor in cluster.control_allowed_uids");
        return refuse(stream, &format!("uid {uid} is not allowed (root and cluster.control_allowed_uids only)")).await;
    }
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    loop {
        let mut line = Vec::new();
        let read = tokio::time::timeout(IDLE_TIMEOUT, (&mut rd).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line)).await;
        match read {
            Err(_) | Ok(Err(_)) | Ok(Ok(0)) => return,
            Ok(Ok(_)) => {}
        }
        if line.ends_with(b"\n") {
            line.pop();
        } else if line.len() > MAX_LINE {
            tracing::warn!(uid, "control socket: request longer than {MAX_LINE} bytes; connection closed");
            let _ = write_reply(&mut wr, &error_reply(format!("request longer than {MAX_LINE} bytes; connection closed"))).await;
            let _ = wr.shutdown().await;
            return;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let reply = match parse_request(&line) {
            Err(e) => {
                tracing::debug!(uid, error = %e, "control socket: bad request");
                error_reply(e)
            }
            Ok(request) => {
                if let ControlRequest::Admin(a) = &request {
                    tracing::info!(uid, request = %serde_json::to_string(a).unwrap_or_default(), "operator request");
                }
                let (reply_tx, reply_rx) = oneshot::channel();
                if tx.send(Pending { request, reply: reply_tx }).await.is_err() {
                    error_reply("the daemon is shutting down")
                } else {
                    reply_rx.await.unwrap_or_else(|_| error_reply("the daemon is shutting down"))
                }
            }
        };
        if write_reply(&mut wr, &reply).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fence::FenceAction;

    #[test]
    fn parses_requests() {
        assert_eq!(parse_request(br#"{"request":"status"}"#), Ok(ControlRequest::Status));
        assert_eq!(
            parse_request(br#"{"request":"migrate","target":"MDT0","to":"n2"}"#),
            Ok(ControlRequest::Admin(AdminRequest::Migrate { target: "MDT0".into(), to: "n2".into() }))
        );
        assert_eq!(
            parse_request(br#"{"request":"fence","node":"n2","action":"Off"}"#),
            Ok(ControlRequest::Admin(AdminRequest::Fence { node: "n2".into(), action: FenceAction::Off }))
        );
        assert_eq!(parse_request(br#"{"request":"maintenance","on":true}"#), Ok(ControlRequest::Admin(AdminRequest::Maintenance { on: true })));
        assert!(parse_request(b"{nope").unwrap_err().contains("not JSON"));
        assert!(parse_request(b"[1,2]").unwrap_err().contains("\"request\""));
        assert!(parse_request(br#"{"request":"format_disks"}"#).unwrap_err().contains("format_disks"));
        assert!(parse_request(br#"{"request":"migrate","target":"x"}"#).is_err());
    }

    #[tokio::test]
    async fn serves_lines_refuses_oversized_and_replaces_stale_socket() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("sub/control.sock");
        let mut sock = ControlSocket::bind(&path, &[]).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        // a second daemon is refused while the first one answers
        let (tx, mut rx) = mpsc::channel::<Pending>(4);
        sock.spawn(tx);
        let e = ControlSocket::bind(&path, &[]).unwrap_err().to_string();
        assert!(e.contains("another failoverd"), "{e}");
        tokio::spawn(async move {
            while let Some(p) = rx.recv().await {
                let _ = p.reply.send(json!({"ok": true, "echo": format!("{:?}", p.request)}));
            }
        });
        let stream = UnixStream::connect(&path).await.unwrap();
        let (r, mut w) = stream.into_split();
        let mut r = BufReader::new(r);
        let mut line = String::new();
        w.write_all(b"{\"request\":\"status\"}\nnot json\n").await.unwrap();
        r.read_line(&mut line).await.unwrap();
        assert!(line.contains("\"ok\":true") && line.contains("Status"), "{line}");
        line.clear();
        r.read_line(&mut line).await.unwrap();
        assert!(line.contains("\"ok\":false"), "{line}");
        let big = vec![b'x'; MAX_LINE + 10];
        w.write_all(&big).await.unwrap();
        line.clear();
        r.read_line(&mut line).await.unwrap();
        assert!(line.contains("longer than"), "{line}");
        line.clear();
        assert_eq!(r.read_line(&mut line).await.unwrap(), 0, "connection closed after an oversized request");
        drop(sock);
        assert!(!path.exists(), "socket file removed on drop");
        // a stale socket file (nobody answering) is replaced
        let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(stale);
        assert!(path.exists());
        let _sock = ControlSocket::bind(&path, &[1000]).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o666);
        // never removes something that is not a socket
        let f = d.path().join("regular");
        std::fs::write(&f, "x").unwrap();
        assert!(ControlSocket::bind(&f, &[]).unwrap_err().to_string().contains("not a socket"));
    }
}
