//! Reading values: each converter checks one value; a `Section` reports under `base.field`.

use super::*;

/// Reads the keys of one table (`cluster`, `node[1]`...) and reports problems under their full key.
/// Unreadable values are reported and replaced by a placeholder; the config is rejected in the end anyway.
pub(super) struct Section<'p> {
    pub(super) p: &'p mut Problems,
    pub(super) base: String,
}

impl<'p> Section<'p> {
    pub(super) fn new(p: &'p mut Problems, base: impl Into<String>) -> Section<'p> {
        Section { p, base: base.into() }
    }

    pub(super) fn key(&self, field: &str) -> String {
        join_key(&self.base, field)
    }

    pub(super) fn push(&mut self, field: &str, message: impl Into<String>) {
        let key = self.key(field);
        self.p.push(key, message);
    }

    pub(super) fn clean(&self, field: &str) -> bool {
        self.p.clean(&self.key(field))
    }

    /// An optional key: `None` when absent or invalid (then reported).
    pub(super) fn opt<T>(&mut self, field: &str, v: &Raw, conv: impl Fn(&Value) -> Result<T, String>) -> Option<T> {
        match conv(v.as_ref()?) {
            Ok(x) => Some(x),
            Err(message) => {
                self.push(field, message);
                None
            }
        }
    }

    /// An optional key with a default (also used as placeholder when the value is invalid).
    pub(super) fn or<T>(&mut self, field: &str, v: &Raw, conv: impl Fn(&Value) -> Result<T, String>, default: T) -> T {
        self.opt(field, v, conv).unwrap_or(default)
    }

    /// A required key: reports it when missing, with an example of how to write it.
    pub(super) fn req<T>(&mut self, field: &str, v: &Raw, conv: impl Fn(&Value) -> Result<T, String>, example: &str) -> Option<T> {
        if v.is_none() {
            self.missing(field, example);
        }
        self.opt(field, v, conv)
    }

    pub(super) fn missing(&mut self, field: &str, example: &str) {
        self.push(field, format!("missing; this key is required, e.g. {field} = {example}"));
    }

    /// An optional array whose elements are checked one by one (reported as `field[i]`); invalid elements
    /// are dropped. `None` when absent.
    pub(super) fn list<T>(&mut self, field: &str, v: &Raw, conv: impl Fn(&Value) -> Result<T, String>) -> Option<Vec<T>> {
        let v = v.as_ref()?;
        let Some(items) = v.as_array() else {
            self.push(field, format!("expected an array [...], found {}", describe(v)));
            return Some(Vec::new());
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match conv(item) {
                Ok(x) => out.push(x),
                Err(message) => self.push(&format!("{field}[{i}]"), message),
            }
        }
        Some(out)
    }

    pub(super) fn req_list<T>(
        &mut self,
        field: &str,
        v: &Raw,
        conv: impl Fn(&Value) -> Result<T, String>,
        example: &str,
    ) -> Vec<T> {
        if v.is_none() {
            self.missing(field, example);
        }
        self.list(field, v, conv).unwrap_or_default()
    }

    /// An optional inline table `{ key = value, ... }` whose keys are checked by `check_key` and values by
    /// `conv`; each problem is reported as `field.key`.
    pub(super) fn map<T>(
        &mut self,
        field: &str,
        v: &Raw,
        check_key: impl Fn(&str) -> Result<(), String>,
        conv: impl Fn(&Value) -> Result<T, String>,
    ) -> BTreeMap<String, T> {
        let mut out = BTreeMap::new();
        let Some(v) = v else { return out };
        let Some(table) = v.as_table() else {
            self.push(field, format!("expected a table {{ key = \"value\", ... }}, found {}", describe(v)));
            return out;
        };
        for (k, item) in table {
            let key = format!("{field}.{k}");
            match check_key(k).and_then(|()| conv(item)) {
                Ok(x) => {
                    out.insert(k.clone(), x);
                }
                Err(message) => self.push(&key, message),
            }
        }
        out
    }

    /// Report the second and later occurrences of a value in a list read from `field` (only when the whole
    /// list was valid, so that positions are right).
    pub(super) fn no_repeats<T: Ord + fmt::Display>(&mut self, field: &str, items: &[T]) {
        if !self.clean(field) {
            return;
        }
        let mut seen = BTreeMap::new();
        for (i, item) in items.iter().enumerate() {
            let first = *seen.entry(item).or_insert(i);
            if first != i {
                let first_key = self.key(&format!("{field}[{first}]"));
                self.push(&format!("{field}[{i}]"), format!("{item} is listed twice (also {first_key}); remove one"));
            }
        }
    }

    /// Keys that do not belong to the chosen kind: `owners` maps each kind-specific key to the kinds using it.
    pub(super) fn foreign_keys(&mut self, kind: &str, present: &[(&'static str, bool)], owners: &[(&'static str, &[&str])]) {
        for (field, is_present) in present {
            let Some((_, kinds)) = owners.iter().find(|(k, _)| k == field) else { continue };
            if *is_present && !kinds.contains(&kind) {
                let message = format!(
                    "`{field}` does not apply to kind \"{kind}\" (it is a key of kind {}); remove it or change kind",
                    kinds.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(" or ")
                );
                self.push(field, message);
            }
        }
    }
}

/// A value as an operator would name it in an error message.
pub(super) fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("the string \"{s}\""),
        Value::Integer(i) => format!("the integer {i}"),
        Value::Float(f) => format!("the number {f}"),
        Value::Boolean(b) => format!("{b}"),
        Value::Datetime(d) => format!("the date {d}"),
        Value::Array(_) => "an array".to_owned(),
        Value::Table(_) => "a table".to_owned(),
    }
}

pub(super) fn conv_str(v: &Value) -> Result<&str, String> {
    v.as_str().ok_or_else(|| format!("expected a string in quotes, found {}", describe(v)))
}

pub(super) fn conv_string(v: &Value) -> Result<String, String> {
    conv_str(v).map(str::to_owned)
}

/// A non-empty string without whitespace or control characters (host names, lctl devices, NIDs...).
pub(super) fn conv_word(v: &Value) -> Result<String, String> {
    let s = conv_str(v)?;
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("\"{}\" contains spaces or control characters", s.escape_debug()));
    }
    Ok(s.to_owned())
}

/// A name of a cluster, link, node, device or target: `[A-Za-z0-9_.-]`, 1 to 64 characters.
pub(super) fn conv_name(v: &Value) -> Result<String, String> {
    let s = conv_str(v)?;
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if s.is_empty() || s.len() > defaults::MAX_NAME_LEN || !s.chars().all(valid) {
        return Err(format!(
            "\"{}\" is not a valid name: use 1 to {} of the characters A-Z a-z 0-9 _ . -",
            s.escape_debug(),
            defaults::MAX_NAME_LEN
        ));
    }
    Ok(s.to_owned())
}

/// A host name as `uname -n` prints it (RFC 1123 characters, at most 64 bytes: the kernel's limit).
pub(super) fn conv_hostname(v: &Value) -> Result<String, String> {
    let s = conv_str(v)?;
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    if s.is_empty() || s.len() > 64 || !s.chars().all(valid) {
        return Err(format!("\"{}\" is not a host name as `uname -n` prints it (1 to 64 of A-Z a-z 0-9 . - _)", s.escape_debug()));
    }
    Ok(s.to_owned())
}

pub(super) fn conv_bool(v: &Value) -> Result<bool, String> {
    v.as_bool().ok_or_else(|| format!("expected true or false (without quotes), found {}", describe(v)))
}

pub(super) fn conv_int(v: &Value, min: i64, max: i64) -> Result<i64, String> {
    let Some(i) = v.as_integer() else {
        return Err(format!("expected an integer (without quotes), found {}", describe(v)));
    };
    if i < min || i > max {
        return Err(format!("{i} is out of range: use {min} to {max}"));
    }
    Ok(i)
}

pub(super) fn conv_u32(v: &Value) -> Result<u32, String> {
    conv_int(v, 0, u32::MAX.into()).map(|i| i as u32)
}

pub(super) fn conv_port(v: &Value) -> Result<u16, String> {
    conv_int(v, 1, u16::MAX.into()).map(|i| i as u16)
}

pub(super) fn conv_duration(v: &Value) -> Result<Duration, String> {
    let Some(s) = v.as_str() else {
        return Err(format!(
            "expected a duration in quotes such as \"250ms\", \"3s\" or \"2min\", found {}",
            describe(v)
        ));
    };
    humantime::parse_duration(s).map_err(|e| {
        format!("\"{}\" is not a duration ({e}); write e.g. \"250ms\", \"3s\" or \"2min\"", s.escape_debug())
    })
}

pub(super) fn conv_positive_duration(v: &Value) -> Result<Duration, String> {
    let d = conv_duration(v)?;
    if d.is_zero() {
        return Err("must be longer than 0".to_owned());
    }
    Ok(d)
}

pub(super) fn conv_abs_path(v: &Value) -> Result<PathBuf, String> {
    let s = conv_str(v)?;
    if !s.starts_with('/') {
        return Err(format!("\"{}\" is not an absolute path; write the full path, starting with /", s.escape_debug()));
    }
    if s.chars().any(char::is_control) {
        return Err(format!("\"{}\" contains control characters", s.escape_debug()));
    }
    Ok(PathBuf::from(s))
}

/// A program: a name looked up on PATH, or an absolute path (never relative to the working directory).
pub(super) fn conv_program(v: &Value) -> Result<String, String> {
    let s = conv_word(v)?;
    if s.contains('/') && !s.starts_with('/') {
        return Err(format!("\"{s}\" is a relative path; write an absolute path or a program name found on PATH"));
    }
    Ok(s)
}

/// An `ip:port` a peer can send to.
pub(super) fn conv_peer_addr(v: &Value) -> Result<SocketAddr, String> {
    let addr = conv_listen_addr(v)?;
    if addr.port() == 0 {
        return Err(format!("{addr}: port 0 cannot be reached; use a fixed UDP port such as 7405"));
    }
    if addr.ip().is_unspecified() {
        return Err(format!(
            "{addr}: {} is not an address peers can send to; write this host's address on the link",
            addr.ip()
        ));
    }
    Ok(addr)
}

pub(super) fn conv_listen_addr(v: &Value) -> Result<SocketAddr, String> {
    let s = conv_str(v)?;
    s.parse().map_err(|_| {
        format!(
            "\"{}\" is not an ip:port address; write e.g. \"10.0.0.1:7405\" or \"[fd00::1]:7405\" (host names are not accepted)",
            s.escape_debug()
        )
    })
}

/// A hostid: `"a1a1a1a1"` or `"0xa1a1a1a1"` (8 hex digits, as hostid(1) prints), or a TOML integer.
pub(super) fn conv_hostid(v: &Value) -> Result<u32, String> {
    let id = match v {
        Value::Integer(i) => u32::try_from(*i)
            .map_err(|_| format!("{i} does not fit in 32 bits; write the 8 hex digits hostid prints"))?,
        Value::String(s) => parse_hostid(s)?,
        other => {
            return Err(format!(
                "expected 8 hex digits in quotes as hostid(1) prints them, e.g. \"a1a1a1a1\", found {}",
                describe(other)
            ))
        }
    };
    if id == 0 {
        return Err(
            "hostid 0 means \"no hostid\" to ZFS; create a persistent one with zgenhostid and write what hostid prints"
                .to_owned(),
        );
    }
    Ok(id)
}

pub(super) fn parse_hostid(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    if digits.len() != 8 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "\"{}\" is not 8 hex digits; write what hostid prints on that node, e.g. \"a1a1a1a1\"",
            s.escape_debug()
        ));
    }
    u32::from_str_radix(digits, 16).map_err(|e| e.to_string())
}

/// One of a fixed set of spellings.
pub(super) fn conv_choice<T: Copy>(v: &Value, choices: &[(&str, T)]) -> Result<T, String> {
    let s = conv_str(v)?;
    choices.iter().find(|(name, _)| *name == s).map(|(_, x)| *x).ok_or_else(|| {
        let names: Vec<String> = choices.iter().map(|(n, _)| format!("\"{n}\"")).collect();
        format!("\"{}\" is not one of {}", s.escape_debug(), names.join(", "))
    })
}

pub(super) fn fmt_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// `n thing` or `n things`.
pub(super) fn count(n: usize, thing: &str) -> String {
    match (n, thing.ends_with("ss")) {
        (1, _) => format!("1 {thing}"),
        (_, true) => format!("{n} {thing}es"),
        _ => format!("{n} {thing}s"),
    }
}
