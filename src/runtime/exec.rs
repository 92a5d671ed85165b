//! Running the engine's commands as real processes.
//!
//! Each [`Command`] runs in its own process group (`setpgid(0, 0)`), with the daemon's environment plus the
//! command's, `LC_ALL=C` unless the command sets `LC_ALL` or `LANG` itself (the judges parse the tools' English
//! output), stdin written then closed (or `/dev/null` when there is none), and stdout/stderr captured up to
//! [`OUTPUT_CAP`] bytes each (the rest is read and thrown away, so a chatty tool never blocks on a full pipe;
//! the kept part ends with a marker saying so).
//!
//! Secrets are resolved here, at run time, never earlier: the file is read, one trailing newline stripped,
//! and the value goes into the environment, a `key=value` stdin line, or a private directory (mode 0700, file
//! 0600, on `/dev/shm` when there is one so it never reaches a disk) that is removed when the command ends.
//! A secret never appears in argv or in a log line. A secret file that cannot be read is reported as
//! `Exit::SpawnFailed` naming the file; so is a multi-line secret bound for stdin or a config file (it would
//! inject extra options).
//!
//! On timeout the *whole process group* gets SIGKILL — a fence agent's `ipmitool` child or a shell's
//! background job dies with it — and the result is `Exit::TimedOut`, whatever the process was doing. When the
//! main process exits but a background process it left keeps the output pipes open, reading stops after
//! [`AFTER_EXIT_GRACE`] and the exit status is reported as it was.

use std::ffi::OsString;
use std::future::Future;
use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::command::{Command, CommandResult, Exit, SecretInto};
use crate::engine::Purpose;

/// Bytes of stdout and of stderr kept per command.
pub const OUTPUT_CAP: usize = 64 * 1024;

/// How long output is still read after the main process exited (a background process may hold the pipe).
pub const AFTER_EXIT_GRACE: Duration = Duration::from_secs(2);

/// How a command shows up in logs: which node ran it and what for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Label {
    pub node: String,
    /// `fence`, `storage`, `discover` or `notify`.
    pub purpose: String,
    /// The fence victim or the storage target, when there is one.
    pub target: String,
    /// What the command does within its purpose, e.g. `off via bmc1 (level 1, counted from 1 as in events)` or `forced/import`.
    pub step: String,
}

impl Label {
    /// The label of a command the engine asked for.
    pub fn of(node: &str, purpose: &Purpose) -> Label {
        let (p, target, step) = match purpose {
            Purpose::Fence { victim, device, level, action } => {
                ("fence", victim.clone(), format!("{} via {device} (level {})", action.as_str(), level + 1))
            }
            Purpose::Storage { target, sequence, step } => {
                ("storage", target.clone(), format!("{}/{}", sequence.as_str(), step.name()))
            }
            Purpose::RecoveryStatus { target } => ("storage", target.clone(), "monitor/recovery-status".to_string()),
            Purpose::Discover => ("discover", String::new(), String::new()),
        };
        Label { node: node.to_string(), purpose: p.to_string(), target, step }
    }
}

/// Where the daemon's commands run. The daemon hands every command the engine asks for to its executor and
/// feeds the result back to the engine. Production uses [`Processes`]; `failoverd demo` answers the commands
/// from the simulator's storage and power models instead.
pub trait Executor: Send + Sync {
    /// Run `command` (logged as `label`) to completion or timeout.
    fn execute(&self, command: Command, label: Label) -> Pin<Box<dyn Future<Output = CommandResult> + Send>>;
}

/// The production executor: every command is a real process, run by [`run_logged`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Processes;

impl Executor for Processes {
    fn execute(&self, command: Command, label: Label) -> Pin<Box<dyn Future<Output = CommandResult> + Send>> {
        Box::pin(async move { run_logged(&command, &label).await })
    }
}

/// Run `cmd` and log it: the command line before, the outcome and duration after. Never logs stdin, the
/// environment or secrets.
///
/// Levels, so that an idle cluster is quiet at INFO: the periodic health checks (`monitor/...`) log at DEBUG
/// unless they end badly. An exit code other than 0 is not a failure by itself (a fence agent's `status`
/// exits 2 for "off", `zpool import` without a pool exits 1): failoverd judges every result, and the event that
/// follows says what it meant, so such an exit is logged at INFO (DEBUG for health checks). Only a command
/// that timed out, was killed or could not start is a WARN here.
pub async fn run_logged(cmd: &Command, label: &Label) -> CommandResult {
    let routine = label.step.starts_with("monitor/");
    if routine {
        tracing::debug!(node = %label.node, purpose = %label.purpose, target = %label.target, step = %label.step,
            command = %cmd.display(), timeout_ms = cmd.timeout.as_millis() as u64, "running command");
    } else {
        tracing::info!(node = %label.node, purpose = %label.purpose, target = %label.target, step = %label.step,
            command = %cmd.display(), timeout_ms = cmd.timeout.as_millis() as u64, "running command");
    }
    let result = run(cmd).await;
    let exit = exit_text(&result.exit);
    let duration_ms = result.duration.as_millis() as u64;
    match &result.exit {
        Exit::Code(0) if routine => tracing::debug!(node = %label.node, purpose = %label.purpose, target = %label.target,
            step = %label.step, command = %cmd.display(), exit = %exit, duration_ms, "command finished"),
        Exit::Code(0) => tracing::info!(node = %label.node, purpose = %label.purpose, target = %label.target,
            step = %label.step, command = %cmd.display(), exit = %exit, duration_ms, "command finished"),
        Exit::Code(_) if routine => tracing::info!(node = %label.node, purpose = %label.purpose, target = %label.target,
            step = %label.step, command = %cmd.display(), exit = %exit, duration_ms, outcome = %result.summary(),
            "health check command exited non-zero (failoverd judges it: see the next event)"),
        Exit::Code(_) => tracing::info!(node = %label.node, purpose = %label.purpose, target = %label.target,
            step = %label.step, command = %cmd.display(), exit = %exit, duration_ms, outcome = %result.summary(),
            "command finished (exit code judged by failoverd: see the next event)"),
        _ => tracing::warn!(node = %label.node, purpose = %label.purpose, target = %label.target, step = %label.step,
            command = %cmd.display(), exit = %exit, duration_ms, outcome = %result.summary(), "command failed"),
    }
    result
}

/// How an exit reads in a log field.
pub fn exit_text(exit: &Exit) -> String {
    match exit {
        Exit::Code(c) => c.to_string(),
        Exit::Signal(s) => format!("signal {s}"),
        Exit::TimedOut => "timed out".into(),
        Exit::SpawnFailed(why) => format!("not started: {why}"),
    }
}

/// Run `cmd` to completion (or timeout) and return what happened. Never panics, never hangs past the
/// command's timeout plus the time the kernel takes to deliver SIGKILL.
pub async fn run(cmd: &Command) -> CommandResult {
    let started = Instant::now();
    let spawn_failed = |why: String| CommandResult {
        exit: Exit::SpawnFailed(why),
        stdout: String::new(),
        stderr: String::new(),
        duration: started.elapsed(),
    };
    let Some(program) = cmd.argv.first() else {
        return spawn_failed("empty command line".into());
    };
    let prepared = match prepare(cmd) {
        Ok(p) => p,
        Err(why) => return spawn_failed(why),
    };

    let mut proc = tokio::process::Command::new(program);
    proc.args(&cmd.argv[1..]);
    if !cmd.env.contains_key("LC_ALL") && !cmd.env.contains_key("LANG") {
        proc.env("LC_ALL", "C");
    }
    proc.envs(&cmd.env);
    for (k, v) in &prepared.env {
        proc.env(k, v);
    }
    if let Some(tag) = super::orphans::tag() {
        proc.env(super::orphans::TAG_VAR, tag);
    }
    proc.process_group(0)
        .stdin(if prepared.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match proc.spawn() {
        Ok(c) => c,
        Err(e) => return spawn_failed(format!("{program}: {e}")),
    };
    let pid = child.id();
    let stdin_pipe = child.stdin.take();
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return spawn_failed(format!("{program}: output pipes missing"));
    };

    let deadline = started + cmd.timeout;
    let mut out = Capture::default();
    let mut err = Capture::default();
    let (status, io_done) = {
        let input = prepared.stdin.clone();
        let write_stdin = async move {
            if let (Some(mut pipe), Some(data)) = (stdin_pipe, input) {
                // EPIPE (the program does not read its stdin) is not an error of ours
                let _ = pipe.write_all(&data).await;
                let _ = pipe.shutdown().await;
            }
        };
        let io = async { tokio::join!(write_stdin, read_capped(&mut stdout, &mut out), read_capped(&mut stderr, &mut err)) };
        tokio::pin!(io);
        let mut status: Option<std::io::Result<ExitStatus>> = None;
        let mut io_done = false;
        let mut limit = deadline;
        loop {
            tokio::select! {
                r = child.wait(), if status.is_none() => {
                    status = Some(r);
                    if io_done { break; }
                    limit = limit.min(Instant::now() + AFTER_EXIT_GRACE);
                }
                _ = &mut io, if !io_done => {
                    io_done = true;
                    if status.is_some() { break; }
                }
                _ = tokio::time::sleep_until(limit) => break,
            }
        }
        (status, io_done)
    };

    let exit = match status {
        None => {
            if let Some(pid) = pid {
                // the group id is the child's pid: it cannot have been reused, the child is not reaped yet
                if let Err(e) = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL) {
                    tracing::warn!(command = %cmd.display(), error = %e, "cannot kill the process group of a timed-out command");
                }
            }
            // Reap in the background: a process stuck in the kernel (D state) dies only when its I/O ends, and
            // the engine must hear about the timeout now.
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
            Exit::TimedOut
        }
        Some(Ok(st)) => match (st.code(), st.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(sig)) => Exit::Signal(sig),
            (None, None) => Exit::SpawnFailed(format!("{program}: unknown exit status {st:?}")),
        },
        Some(Err(e)) => Exit::SpawnFailed(format!("{program}: waiting for it failed: {e}")),
    };
    let mut stderr_text = err.finish();
    if !io_done && !matches!(exit, Exit::TimedOut) {
        stderr_text.push_str("\n[failoverd: stopped reading output: a background process kept the pipe open]\n");
    }
    drop(prepared);
    CommandResult { exit, stdout: out.finish(), stderr: stderr_text, duration: started.elapsed() }
}

/// What a command needs besides its argv, with its secrets resolved.
struct Prepared {
    stdin: Option<Vec<u8>>,
    env: Vec<(String, OsString)>,
    /// Removed on drop, after the command ended.
    _dirs: Vec<PrivateDir>,
}

fn prepare(cmd: &Command) -> Result<Prepared, String> {
    let mut stdin: Option<Vec<u8>> = cmd.stdin.as_ref().map(|s| s.clone().into_bytes());
    let mut env = Vec::new();
    let mut dirs = Vec::new();
    for secret in &cmd.secrets {
        let value = read_secret(&secret.file)?;
        let one_line = |what: &str| -> Result<(), String> {
            if value.contains(&b'\n') || value.contains(&b'\r') {
                Err(format!("secret file {}: more than one line, cannot be used as {what}", secret.file.display()))
            } else {
                Ok(())
            }
        };
        match &secret.into {
            SecretInto::Env(var) => {
                if value.contains(&0) {
                    return Err(format!("secret file {}: contains a NUL byte, cannot go into ${var}", secret.file.display()));
                }
                env.push((var.clone(), OsString::from_vec(value)));
            }
            SecretInto::StdinLine(key) => {
                one_line(&format!("stdin option {key}"))?;
                let buf = stdin.get_or_insert_with(Vec::new);
                if !buf.is_empty() && !buf.ends_with(b"\n") {
                    buf.push(b'\n');
                }
                buf.extend_from_slice(key.as_bytes());
                buf.push(b'=');
                buf.extend_from_slice(&value);
                buf.push(b'\n');
            }
            SecretInto::ConfDir { env_var, file_name, prefix } => {
                one_line(&format!("a line of {file_name}"))?;
                let dir = PrivateDir::create().map_err(|e| format!("cannot create a private directory for secret file {}: {e}", secret.file.display()))?;
                let mut content = prefix.clone().into_bytes();
                content.extend_from_slice(&value);
                content.push(b'\n');
                dir.write_file(file_name, &content).map_err(|e| format!("cannot write {file_name} for secret file {}: {e}", secret.file.display()))?;
                env.push((env_var.clone(), dir.path.clone().into_os_string()));
                dirs.push(dir);
            }
        }
    }
    Ok(Prepared { stdin, env, _dirs: dirs })
}

/// Read a secret file: its bytes without one trailing newline (`\n` or `\r\n`).
fn read_secret(path: &Path) -> Result<Vec<u8>, String> {
    let mut v = std::fs::read(path).map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?;
    if v.ends_with(b"\n") {
        v.pop();
        if v.ends_with(b"\r") {
            v.pop();
        }
    }
    Ok(v)
}

/// A directory only this process can read, removed (with its contents) on drop.
struct PrivateDir {
    path: PathBuf,
}

static PRIVATE_DIRS: AtomicU64 = AtomicU64::new(0);

impl PrivateDir {
    fn create() -> std::io::Result<PrivateDir> {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        let mut last = None;
        for _ in 0..16 {
            let n = PRIVATE_DIRS.fetch_add(1, Ordering::Relaxed);
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
            let path = base.join(format!("failoverd-secret-{}-{n}-{nanos:x}", std::process::id()));
            // create (not create_all): fails if anything already sits there, so nobody can pre-plant it
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(PrivateDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no free name")))
    }

    fn write_file(&self, name: &str, content: &[u8]) -> std::io::Result<()> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("bad file name {name:?}")));
        }
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(self.path.join(name))?;
        f.write_all(content)
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove a private secret directory");
        }
    }
}

/// Output kept from one pipe, and how much there was.
#[derive(Default)]
struct Capture {
    kept: Vec<u8>,
    total: usize,
}

impl Capture {
    fn finish(self) -> String {
        let mut s = String::from_utf8_lossy(&self.kept).into_owned();
        if self.total > self.kept.len() {
            s.push_str(&format!("\n[failoverd: output truncated: {} bytes, the first {} kept]\n", self.total, self.kept.len()));
        }
        s
    }
}

async fn read_capped<R: AsyncRead + Unpin>(r: &mut R, cap: &mut Capture) {
    let mut chunk = [0u8; 8192];
    loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                cap.total += n;
                let room = OUTPUT_CAP - cap.kept.len();
                cap.kept.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::SecretUse;

    fn sh(script: &str) -> Command {
        Command::new(["sh", "-c", script], Duration::from_secs(10))
    }

    fn secret_file(dir: &Path, content: &str) -> PathBuf {
        let p = dir.join("secret");
        std::fs::write(&p, content).unwrap();
        p
    }

    #[tokio::test]
    async fn stdin_is_written_then_closed() {
        let r = run(&Command::new(["cat"], Duration::from_secs(5)).with_stdin("hello\nworld\n")).await;
        assert_eq!(r.exit, Exit::Code(0));
        assert_eq!(r.stdout, "hello\nworld\n");
        // without stdin the program reads /dev/null, not the daemon's stdin
        let r = run(&Command::new(["cat"], Duration::from_secs(5))).await;
        assert_eq!((r.exit, r.stdout.as_str()), (Exit::Code(0), ""));
    }

    #[tokio::test]
    async fn env_exit_code_and_locale() {
        let r = run(&sh("printf '%s %s' \"$FOO\" \"$LC_ALL\"; echo oops >&2; exit 3").with_env("FOO", "bar")).await;
        assert_eq!(r.exit, Exit::Code(3));
        assert_eq!(r.stdout, "bar C");
        assert_eq!(r.stderr, "oops\n");
        let r = run(&sh("kill -TERM $$")).await;
        assert_eq!(r.exit, Exit::Signal(15));
    }

    #[tokio::test]
    async fn env_secret() {
        let d = tempfile::tempdir().unwrap();
        let f = secret_file(d.path(), "s3cret\n");
        let cmd = sh("printf '%s' \"$IPMI_PASSWORD\"").with_secret(SecretUse { file: f, into: SecretInto::Env("IPMI_PASSWORD".into()) });
        assert!(!cmd.display().contains("s3cret"));
        let r = run(&cmd).await;
        assert_eq!(r.exit, Exit::Code(0));
        assert_eq!(r.stdout, "s3cret");
    }

    #[tokio::test]
    async fn stdin_line_secret_is_appended() {
        let d = tempfile::tempdir().unwrap();
        let f = secret_file(d.path(), "pa ss\n");
        let cmd = Command::new(["cat"], Duration::from_secs(5))
            .with_stdin("action=off\nip=10.0.0.1")
            .with_secret(SecretUse { file: f.clone(), into: SecretInto::StdinLine("password".into()) });
        let r = run(&cmd).await;
        assert_eq!(r.stdout, "action=off\nip=10.0.0.1\npassword=pa ss\n");
        // a multi-line secret would inject options: refused
        std::fs::write(&f, "pw\naction=on\n").unwrap();
        let r = run(&cmd).await;
        assert!(matches!(&r.exit, Exit::SpawnFailed(why) if why.contains("more than one line") && why.contains("secret")), "{r:?}");
    }

    #[tokio::test]
    async fn confdir_secret_is_private_and_removed() {
        let d = tempfile::tempdir().unwrap();
        let f = secret_file(d.path(), "private\n");
        let cmd = sh("echo \"$SNMPCONFPATH\"; stat -c %a \"$SNMPCONFPATH\" \"$SNMPCONFPATH/snmp.conf\"; cat \"$SNMPCONFPATH/snmp.conf\"")
            .with_secret(SecretUse {
                file: f,
                into: SecretInto::ConfDir { env_var: "SNMPCONFPATH".into(), file_name: "snmp.conf".into(), prefix: "defCommunity ".into() },
            });
        let r = run(&cmd).await;
        assert_eq!(r.exit, Exit::Code(0), "{r:?}");
        let lines: Vec<&str> = r.stdout.lines().collect();
        assert_eq!(&lines[1..], ["700", "600", "defCommunity private"]);
        assert!(!Path::new(lines[0]).exists(), "private dir {} left behind", lines[0]);
    }

    #[tokio::test]
    async fn unreadable_secret_names_the_file() {
        let cmd = sh("true").with_secret(SecretUse { file: "/nonexistent/bmc.pw".into(), into: SecretInto::Env("X".into()) });
        let r = run(&cmd).await;
        assert!(matches!(&r.exit, Exit::SpawnFailed(why) if why.contains("/nonexistent/bmc.pw")), "{r:?}");
    }

    fn gone(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            // a zombie waiting for init to reap it is dead too
            Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
        }
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let mut cmd = sh("sleep 100 & echo $!; sleep 100");
        cmd.timeout = Duration::from_millis(300);
        let t = std::time::Instant::now();
        let r = run(&cmd).await;
        assert_eq!(r.exit, Exit::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(3), "took {:?}", t.elapsed());
        let grandchild: i32 = r.stdout.trim().parse().expect("partial output kept");
        let mut ok = false;
        for _ in 0..50 {
            if gone(grandchild) {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(ok, "grandchild {grandchild} survived the timeout");
    }

    #[tokio::test]
    async fn output_is_capped() {
        let r = run(&sh("head -c 200000 /dev/zero | tr '\\0' a; head -c 100 /dev/zero | tr '\\0' b >&2")).await;
        assert_eq!(r.exit, Exit::Code(0));
        assert!(r.stdout.starts_with(&"a".repeat(OUTPUT_CAP)));
        assert!(r.stdout.contains("output truncated: 200000 bytes"), "{}", &r.stdout[OUTPUT_CAP..]);
        assert!(r.stdout.len() < OUTPUT_CAP + 200);
        assert_eq!(r.stderr, "b".repeat(100));
    }

    #[tokio::test]
    async fn the_process_executor_runs_real_processes() {
        let exec: std::sync::Arc<dyn Executor> = std::sync::Arc::new(Processes);
        let r = exec.execute(sh("echo hi; exit 3"), Label::default()).await;
        assert_eq!((r.exit, r.stdout.as_str()), (Exit::Code(3), "hi\n"));
    }

    #[tokio::test]
    async fn missing_program() {
        let r = run(&Command::new(["/nonexistent/zpool", "list"], Duration::from_secs(5))).await;
        assert!(matches!(&r.exit, Exit::SpawnFailed(why) if why.contains("/nonexistent/zpool")), "{r:?}");
        let r = run(&Command::new(Vec::<String>::new(), Duration::from_secs(5))).await;
        assert!(matches!(r.exit, Exit::SpawnFailed(_)));
    }

    #[tokio::test]
    async fn background_process_holding_the_pipe_does_not_hang() {
        let t = std::time::Instant::now();
        let r = run(&sh("sleep 4 & echo started; exit 0")).await;
        assert_eq!(r.exit, Exit::Code(0));
        assert!(r.stdout.starts_with("started"));
        assert!(t.elapsed() < Duration::from_secs(4), "took {:?}", t.elapsed());
        assert!(r.stderr.contains("kept the pipe open"));
    }

    #[test]
    fn labels() {
        use crate::fence::FenceAction;
        let l = Label::of("n1", &Purpose::Fence { victim: "n2".into(), device: "bmc2".into(), level: 0, action: FenceAction::Off });
        assert_eq!((l.purpose.as_str(), l.target.as_str(), l.step.as_str()), ("fence", "n2", "off via bmc2 (level 1)"));
    }
}
