//! `agent`: any ClusterLabs `fence_*` program, spoken to through the FenceAgentAPI.
//!
//! argv is the program alone; stdin is `action=<off|on|status>\n`, then every option as `key=value\n`
//! (sorted by key), then `plug=<plug>\n` if set. Secret options (e.g. `password`) are appended to stdin by
//! the driver as `key=<file contents>` lines, so they are never on argv nor in this crate's data.
//!
//! Exit codes (FenceAgentAPI): off/on 0 = done, anything else = failed; status 0 = ON, 2 = OFF, 1 = error.
//! failoverd sequences reboot itself (off, verify, on, verify) rather than sending `action=reboot`, so that
//! the off is always verified with `action=status`. The agent's own error text (fencing.py's `fail()`
//! messages on stderr) refines the error kind.

use std::time::Duration;

use crate::command::{Command, SecretInto, SecretUse};
use crate::config::AgentConfig;

use super::{clip, FenceError, Judge, PowerState, Reading, Verb};

/// The agent command for `action` (`off`, `on`, `status`, ...).
pub fn command(agent: &AgentConfig, action: &str, timeout: Duration) -> Command {
    let mut stdin = format!("action={action}\n");
    for (key, value) in &agent.options {
        stdin.push_str(&format!("{key}={value}\n"));
    }
    if let Some(plug) = &agent.plug {
        stdin.push_str(&format!("plug={plug}\n"));
    }
    let mut cmd = Command::new([agent.program.clone()], timeout).with_stdin(stdin);
    for (key, file) in &agent.secret_options {
        cmd = cmd.with_secret(SecretUse { file: file.clone(), into: SecretInto::StdinLine(key.clone()) });
    }
    cmd
}

/// `action=metadata` for `agent` (no options, no secrets): its stdout is the agent's XML metadata.
pub fn metadata_command(agent: &AgentConfig, timeout: Duration) -> Command {
    Command::new([agent.program.clone()], timeout).with_stdin("action=metadata\n")
}

/// Keys that would change what the agent does if an option line carried them: fencing.py lets the last
/// duplicate win, and `option` is the old name of `action`.
const RESERVED_KEYS: &[&str] = &["action", "option"];

fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.contains(['=', '\n', '\r']) || key.trim() != key {
        return Err(format!("agent option name {key:?} is not a plain name"));
    }
    let norm = key.replace('-', "_");
    if RESERVED_KEYS.contains(&norm.as_str()) {
        return Err(format!("agent option {key:?} would override the action failoverd sends"));
    }
    Ok(())
}

fn check_value(key: &str, value: &str) -> Result<(), String> {
    if value.contains(['\n', '\r']) {
        return Err(format!("agent option {key:?} has a newline in its value"));
    }
    Ok(())
}

pub(super) fn validate(agent: &AgentConfig) -> Result<(), String> {
    if agent.program.trim().is_empty() {
        return Err("agent program is empty".into());
    }
    for (key, value) in &agent.options {
        check_key(key)?;
        check_value(key, value)?;
    }
    for key in agent.secret_options.keys() {
        check_key(key)?;
    }
    if let Some(plug) = &agent.plug {
        check_value("plug", plug)?;
    }
    Ok(())
}

/// Judge an agent result (normal exit) for `verb`.
pub(super) fn judge(j: &Judge<'_>, verb: Verb) -> Result<Reading, FenceError> {
    let code = j.code();
    match verb {
        Verb::Status => match code {
            0 => Ok(Reading::Single(PowerState::On)),
            2 => Ok(Reading::Single(PowerState::Off)),
            1 => Err(classify_error(j, verb)),
            other => Err(j.failed(format!(
                "unexpected exit code {other} for status (FenceAgentAPI: 0 on, 2 off, 1 error): {}",
                agent_text(j)
            ))),
        },
        Verb::Off | Verb::On => {
            if code == 0 {
                let want = if verb == Verb::Off { PowerState::Off } else { PowerState::On };
                Ok(Reading::Single(want))
            } else {
                Err(classify_error(j, verb))
            }
        }
    }
}

/// The agent's message: its `ERROR`/`Failed` lines if any (python warnings and tracebacks left out),
/// else every non-empty stderr line, else stdout.
fn agent_text(j: &Judge<'_>) -> String {
    let lines: Vec<&str> = j.result.stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let errors: Vec<&str> = lines.iter().copied().filter(|l| l.contains("ERROR") || l.contains("Failed")).collect();
    let chosen = if errors.is_empty() { lines } else { errors };
    if chosen.is_empty() {
        j.text()
    } else {
        clip(format!("exit {}: {}", j.code(), chosen.join("; ")))
    }
}

fn classify_error(j: &Judge<'_>, verb: Verb) -> FenceError {
    let all = format!("{}\n{}", j.result.stderr, j.result.stdout);
    let text = agent_text(j);
    let device = j.device.to_string();
    if all.contains("Timed out waiting to power OFF") && verb == Verb::Off {
        return FenceError::StillOn { device, waited: j.result.duration };
    }
    if all.contains("Timed out waiting to power ON") && verb == Verb::On {
        return FenceError::StillOff { device, waited: j.result.duration };
    }
    if all.contains("Connection timed out") || all.contains("Connection lost") {
        return j.unreachable(text);
    }
    if all.contains("Unable to connect/login to fencing device") {
        return j.unreachable(format!("could not connect or log in (the agent does not say which): {text}"));
    }
    if all.contains("does not have the correct privileges") || all.contains("You have to set login password") {
        return j.auth_failed(text);
    }
    j.failed(text)
}

/// Why an agent's metadata could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// No `<resource-agent>` element: not FenceAgentAPI metadata.
    #[error("not fence agent metadata: no <resource-agent> element")]
    NotMetadata,
    /// A comment, tag or attribute value that never ends.
    #[error("metadata ends inside {0}")]
    Truncated(&'static str),
    /// A `<parameter>` element without a `name` attribute, at this byte offset.
    #[error("<parameter> without a name at byte {0}")]
    ParameterWithoutName(usize),
}

/// The parameter names an agent declares in its metadata (`<parameter name="...">`), in document order,
/// each once. Deprecated aliases (`ipaddr`, `login`, ...) are declared too and are kept.
///
/// A small scanner, not a full XML parser: it skips comments, CDATA, processing instructions and
/// declarations, reads tag names and quoted attributes, and decodes the five predefined entities.
pub fn parse_agent_metadata(xml: &str) -> Result<Vec<String>, MetadataError> {
    let mut names: Vec<String> = Vec::new();
    let mut saw_root = false;
    let mut pos = 0;
    while let Some(off) = xml[pos..].find('<') {
        let start = pos + off;
        let rest = &xml[start..];
        const SKIPPED: &[(&str, &str, &str)] = &[
            ("<!--", "-->", "a comment"),
            ("<![CDATA[", "]]>", "a CDATA section"),
            ("<?", "?>", "a processing instruction"),
            ("<!", ">", "a declaration"),
        ];
        if let Some(&(open, close, what)) = SKIPPED.iter().find(|(open, _, _)| rest.starts_with(open)) {
            let end = rest[open.len()..].find(close).ok_or(MetadataError::Truncated(what))?;
            pos = start + open.len() + end + close.len();
            continue;
        }
        let (tag_len, attrs) = scan_tag(rest)?;
        pos = start + tag_len;
        let body = &rest[1..tag_len - 1];
        if body.starts_with('/') {
            continue;
        }
        let name_end = body.find(|c: char| c.is_whitespace() || c == '/').unwrap_or(body.len());
        match &body[..name_end] {
            "resource-agent" => saw_root = true,
            "parameter" => {
                let name = attrs
                    .into_iter()
                    .find(|(k, _)| k == "name")
                    .map(|(_, v)| v)
                    .filter(|v| !v.is_empty())
                    .ok_or(MetadataError::ParameterWithoutName(start))?;
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            _ => {}
        }
    }
    if !saw_root {
        return Err(MetadataError::NotMetadata);
    }
    Ok(names)
}

/// Scan the tag at the start of `s` (which starts with `<`): its length up to and including `>`, and its
/// attributes (decoded).
fn scan_tag(s: &str) -> Result<(usize, Vec<(String, String)>), MetadataError> {
    let bytes = s.as_bytes();
    let mut attrs = Vec::new();
    let mut i = 1;
    // Skip the tag name.
    while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' && bytes[i] != b'/' {
        i += 1;
    }
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        match bytes.get(i) {
            None => return Err(MetadataError::Truncated("a tag")),
            Some(b'>') => return Ok((i + 1, attrs)),
            Some(_) => {}
        }
        let key_start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() && !matches!(bytes[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let key = s[key_start..i].to_string();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if bytes.get(i) != Some(&b'=') {
            // An attribute without a value (not XML, but harmless): keep scanning.
            attrs.push((key, String::new()));
            continue;
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let quote = match bytes.get(i) {
            Some(q @ (b'"' | b'\'')) => *q,
            None => return Err(MetadataError::Truncated("a tag")),
            Some(_) => {
                // Unquoted value: up to whitespace or the end of the tag.
                let v_start = i;
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                    i += 1;
                }
                attrs.push((key, decode_entities(&s[v_start..i])));
                continue;
            }
        };
        let v_start = i + 1;
        let v_len = s[v_start..].find(quote as char).ok_or(MetadataError::Truncated("an attribute value"))?;
        attrs.push((key, decode_entities(&s[v_start..v_start + v_len])));
        i = v_start + v_len + 1;
    }
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

/// Options (and secret options, and `plug`) of `agent` that the agent does not declare, for `doctor`.
/// `-` and `_` count as the same, as in fencing.py; `plug` is also satisfied by the legacy `port`.
pub fn check_agent_options(declared: &[String], agent: &AgentConfig) -> Vec<String> {
    let norm = |s: &str| s.replace('-', "_");
    let declared: Vec<String> = declared.iter().map(|d| norm(d)).collect();
    let has = |name: &str| declared.contains(&norm(name));
    let mut keys: Vec<&String> = agent.options.keys().chain(agent.secret_options.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut missing: Vec<String> = keys.into_iter().filter(|k| !has(k)).cloned().collect();
    if agent.plug.is_some() && !has("plug") && !has("port") {
        missing.push("plug".to_string());
    }
    missing
}
