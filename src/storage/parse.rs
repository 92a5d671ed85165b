//! Parsers of what the real storage tools print: `zdb`, `zpool`, `zfs`, `df`, `lctl`, `/proc/mounts`.
//!
//! Rules every parser here follows (see `docs/reference/storage-tools-formats.md` and the OpenZFS 2.1.11 captures):
//! - parse by keys and tokens, tolerate any amount of whitespace and extra lines; never cut at column positions
//!   (layouts change between releases: the `zpool import` listing gained a column of indent in 2.1);
//! - an answer that cannot be understood is a [`ParseError`], never a guess: callers abort on it.

use std::fmt;

/// Why a tool's output could not be understood. The callers turn it into `StorageError::Unparseable`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn perr(msg: impl Into<String>) -> ParseError {
    ParseError(msg.into())
}

/// The first non-empty line of a text, trimmed ("" when there is none): what error messages quote.
pub fn first_line(text: &str) -> &str {
    text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("")
}

/// All whitespace runs (newlines included) collapsed to one space: for matching messages that the tools wrap
/// over several lines.
fn flatten(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------------------------------------------
// hostid
// ---------------------------------------------------------------------------------------------------------------

/// A hostid written in hex, as `hostid(1)`, the config file and `zpool`'s messages write it: `a1a1a1a1`,
/// `0xa1a1a1a1`, `7f0101` (zpool prints `%lx`, without leading zeroes). At most 8 hex digits.
pub fn parse_hostid_hex(s: &str) -> Option<u32> {
    let s = s.trim();
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    if digits.is_empty() || digits.len() > 8 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// A hostid written in decimal, as `zdb` prints it in a label or MOS config (`hostid: 2711724449`).
pub fn parse_hostid_decimal(s: &str) -> Option<u32> {
    let s = s.trim();
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse::<u32>().ok()
}

/// The hostid as `zdb` prints it: decimal (`2711724449` for `a1a1a1a1`).
pub fn format_hostid_decimal(hostid: u32) -> String {
    hostid.to_string()
}

/// The hostid as `zpool` messages print it (`%lx`: lower-case hex, no padding, no `0x`): `hostid=7f0101`;
/// the MMP refusal puts `0x` in front itself (`hostid: 0x7f0101`).
pub fn format_hostid_hex(hostid: u32) -> String {
    format!("{hostid:x}")
}

/// The hostid as `hostid(1)` and `zgenhostid` write it: 8 lower-case hex digits, zero-padded (`007f0101`).
pub fn format_hostid_padded(hostid: u32) -> String {
    format!("{hostid:08x}")
}

// ---------------------------------------------------------------------------------------------------------------
// zdb: the config nvlist of `zdb -e -C POOL` (MOS config) and `zdb -l DEV` (vdev label)
// ---------------------------------------------------------------------------------------------------------------

/// `pool_state_t` as the `state:` key of a config holds it (include/sys/fs/zfs.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PoolState {
    /// 0: imported somewhere, or the importer crashed / lost power without exporting.
    Active,
    /// 1: cleanly exported (`zpool export`).
    Exported,
    /// 2: destroyed (`zpool destroy`).
    Destroyed,
    /// Any other `pool_state_t` (spare, l2cache, uninitialized...): never expected for a pool's config.
    Other(u64),
}

impl PoolState {
    /// The state from its numeric code.
    pub fn from_code(code: u64) -> PoolState {
        match code {
            0 => PoolState::Active,
            1 => PoolState::Exported,
            2 => PoolState::Destroyed,
            n => PoolState::Other(n),
        }
    }

    /// The numeric code `zdb` prints.
    pub fn code(self) -> u64 {
        match self {
            PoolState::Active => 0,
            PoolState::Exported => 1,
            PoolState::Destroyed => 2,
            PoolState::Other(n) => n,
        }
    }
}

impl fmt::Display for PoolState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolState::Active => write!(f, "0 (ACTIVE)"),
            PoolState::Exported => write!(f, "1 (EXPORTED)"),
            PoolState::Destroyed => write!(f, "2 (DESTROYED)"),
            PoolState::Other(n) => write!(f, "{n}"),
        }
    }
}

/// Who last had the pool, as its on-disk config says: what the forced migration checks before `import -f`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ZdbLabel {
    /// The pool name (`name: 'tank'`).
    pub name: String,
    pub state: PoolState,
    /// The last importer's hostid; `None` when it had hostid 0 (zdb then prints no `hostid:` key at all).
    pub hostid: Option<u32>,
    /// The last importer's `uname -n` (may be empty: `hostname: ''`).
    pub hostname: String,
}

impl ZdbLabel {
    /// The hostid as a number, 0 when absent (which is what an absent key means).
    pub fn hostid_or_zero(&self) -> u32 {
        self.hostid.unwrap_or(0)
    }
}

/// The top-level keys failoverd reads from a config nvlist, each optional: what is left of a config after
/// `grep` (the captures' `zdb -e -C tank | grep -E 'hostid|hostname|state'`) still parses to this.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZdbFields {
    pub name: Option<String>,
    pub state: Option<PoolState>,
    pub hostid: Option<u32>,
    pub hostname: Option<String>,
}

/// One line of an nvlist dump (`"%*s%s: " fmt "\n"`), without its indent.
enum NvLine<'a> {
    /// `key: value`
    Pair(&'a str, &'a str),
    /// `key:` alone: a nested nvlist (or array element) follows, indented deeper.
    Open,
    /// A boolean flag (name only, e.g. `com.delphix:has_per_vdev_zaps`) or anything else at this level.
    Other,
}

fn nv_line(trimmed: &str) -> NvLine<'_> {
    if let Some(pos) = trimmed.find(": ") {
        return NvLine::Pair(&trimmed[..pos], trimmed[pos + 2..].trim());
    }
    if let Some(key) = trimmed.strip_suffix(':') {
        if !key.is_empty() && !key.contains(char::is_whitespace) {
            return NvLine::Open;
        }
    }
    NvLine::Other
}

/// Lines that frame a config rather than belong to it: `MOS Configuration:`, `LABEL 0`, the dashes, and
/// `labels = 0 1 2 3` of `zdb -l`.
fn is_zdb_frame(trimmed: &str) -> bool {
    trimmed == "MOS Configuration:"
        || trimmed.chars().all(|c| c == '-')
        || trimmed.starts_with("labels =")
        || trimmed
            .strip_prefix("LABEL ")
            .is_some_and(|rest| rest.split_whitespace().next().is_some_and(|n| n.chars().all(|c| c.is_ascii_digit())))
}

/// The top-level `key: value` pairs of an nvlist dump. Top level = the indent of the first pair after the last
/// frame line; a `key:` line opens a nested list and everything indented deeper belongs to it; pairs at any
/// other indent (leftovers of a `grep`, stray lines) are ignored.
fn nvlist_top_pairs(text: &str) -> Vec<(&str, &str)> {
    let mut pairs = Vec::new();
    let mut base: Option<usize> = None;
    let mut nested_under: Option<usize> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if is_zdb_frame(trimmed) {
            base = None;
            nested_under = None;
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if let Some(open) = nested_under {
            if indent > open {
                continue;
            }
            nested_under = None;
        }
        let parsed = nv_line(trimmed);
        if matches!(parsed, NvLine::Other) {
            continue;
        }
        let b = *base.get_or_insert(indent);
        if indent != b {
            continue;
        }
        match parsed {
            NvLine::Pair(k, v) => pairs.push((k, v)),
            NvLine::Open => nested_under = Some(indent),
            NvLine::Other => {}
        }
    }
    pairs
}

/// An nvlist string value: `'text'` (quotes stripped; `''` is the empty string). A bare word is accepted too.
fn nv_string(key: &str, value: &str) -> Result<String, ParseError> {
    if let Some(rest) = value.strip_prefix('\'') {
        return rest
            .strip_suffix('\'')
            .map(str::to_string)
            .ok_or_else(|| perr(format!("`{key}`: unterminated quoted string {value}")));
    }
    if value.is_empty() || value.contains(char::is_whitespace) {
        return Err(perr(format!("`{key}`: not a string value: {value:?}")));
    }
    Ok(value.to_string())
}

fn nv_u64(key: &str, value: &str) -> Result<u64, ParseError> {
    if value.is_empty() || !value.chars().all(|c| c.is_ascii_digit()) {
        return Err(perr(format!("`{key}`: not a decimal number: {value:?}")));
    }
    value.parse::<u64>().map_err(|_| perr(format!("`{key}`: number out of range: {value}")))
}

fn set_once<T: PartialEq + fmt::Debug>(slot: &mut Option<T>, key: &str, value: T) -> Result<(), ParseError> {
    match slot {
        Some(old) if *old != value => {
            Err(perr(format!("`{key}` appears twice with different values ({old:?} and {value:?})")))
        }
        _ => {
            *slot = Some(value);
            Ok(())
        }
    }
}

/// The keys `name`, `state`, `hostid`, `hostname` at the top level of a config nvlist dump (MOS config, label,
/// or a `grep` of either). A key present twice with different values (e.g. two labels that disagree) is an
/// error; so is a malformed value (a hostid that is not a decimal `u32`).
pub fn parse_zdb_fields(text: &str) -> Result<ZdbFields, ParseError> {
    let mut f = ZdbFields::default();
    for (key, value) in nvlist_top_pairs(text) {
        match key {
            "name" => set_once(&mut f.name, key, nv_string(key, value)?)?,
            "hostname" => set_once(&mut f.hostname, key, nv_string(key, value)?)?,
            "state" => set_once(&mut f.state, key, PoolState::from_code(nv_u64(key, value)?))?,
            "hostid" => {
                let id = u32::try_from(nv_u64(key, value)?)
                    .map_err(|_| perr(format!("`hostid`: {value} does not fit in 32 bits")))?;
                set_once(&mut f.hostid, key, id)?
            }
            _ => {}
        }
    }
    Ok(f)
}

/// A whole config (from `zdb -e -C` after its header, or `zdb -l`): `name`, `state` and `hostname` are
/// required, `hostid` is optional (absent = hostid 0).
pub fn parse_zdb_label(text: &str) -> Result<ZdbLabel, ParseError> {
    let f = parse_zdb_fields(text)?;
    let missing = |k: &str| perr(format!("no `{k}:` key in the config"));
    Ok(ZdbLabel {
        name: f.name.ok_or_else(|| missing("name"))?,
        state: f.state.ok_or_else(|| missing("state"))?,
        hostid: f.hostid,
        hostname: f.hostname.ok_or_else(|| missing("hostname"))?,
    })
}

/// The output of `zdb -e -C POOL`: a `MOS Configuration:` header, then the config (see [`parse_zdb_label`]).
/// Without the header the output is not a MOS config, whatever else it holds.
pub fn parse_zdb_mos_config(stdout: &str) -> Result<ZdbLabel, ParseError> {
    let mut offset = 0;
    for line in stdout.split_inclusive('\n') {
        offset += line.len();
        if line.trim() == "MOS Configuration:" {
            return parse_zdb_label(&stdout[offset..]);
        }
    }
    Err(perr("no `MOS Configuration:` header"))
}

// ---------------------------------------------------------------------------------------------------------------
// zpool import refusals
// ---------------------------------------------------------------------------------------------------------------

/// Why `zpool import` refused, from its stderr (cmd/zpool/zpool_main.c `do_import`, libzfs EREMOTEIO text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportRefusal {
    /// MMP saw the pool being written: it is imported on a live host. `-f` does not help and must not be tried.
    /// `pool is imported on oss-a (hostid: 0xa1a1a1a1)` (no -f) or `pool is imported on host 'oss-a'
    /// (hostid=a1a1a1a1).` (with -f).
    ActiveElsewhere { host: Option<String>, hostid: Option<u32> },
    /// The label is ACTIVE with another hostid and MMP saw no activity: `pool was previously in use from another
    /// system. Last accessed by oss-a (hostid=a1a1a1a1) at ...`; only `-f` imports it.
    PreviouslyInUse { host: Option<String>, hostid: Option<u32> },
    /// multihost=on but this host's hostid is 0.
    HostidNotSet,
    /// `no such pool available`.
    NoSuchPool,
    /// `a pool with that name already exists` (a pool of that name is imported here).
    NameExists,
    /// Anything else: the first line of stderr.
    Other(String),
}

/// The text between `start` and the first `end` after it.
fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

/// Classify a `zpool import` failure from its stderr. Messages wrapped over lines are matched as one line.
pub fn parse_import_refusal(stderr: &str) -> ImportRefusal {
    let flat = flatten(stderr);
    if flat.contains("pool is imported on a different host") {
        return ImportRefusal::ActiveElsewhere { host: None, hostid: None };
    }
    if let Some(pos) = flat.find("pool is imported on host '") {
        let rest = &flat[pos..];
        let host = between(rest, "host '", "'").map(str::to_string);
        let hostid = between(rest, "(hostid=", ")").and_then(parse_hostid_hex);
        return ImportRefusal::ActiveElsewhere { host, hostid };
    }
    if let Some(pos) = flat.find("pool is imported on ") {
        let rest = &flat[pos + "pool is imported on ".len()..];
        let host = rest.split(" (hostid").next().filter(|h| !h.is_empty() && !h.contains(' ')).map(str::to_string);
        let hostid = between(rest, "(hostid: ", ")").and_then(parse_hostid_hex);
        return ImportRefusal::ActiveElsewhere { host, hostid };
    }
    if flat.contains("previously in use from another system") {
        let host = between(&flat, "Last accessed by ", " (hostid=").map(str::to_string);
        let hostid = between(&flat, "(hostid=", ")").and_then(parse_hostid_hex);
        return ImportRefusal::PreviouslyInUse { host, hostid };
    }
    if flat.contains("system's hostid is not set") {
        return ImportRefusal::HostidNotSet;
    }
    if flat.contains("no such pool available") {
        return ImportRefusal::NoSuchPool;
    }
    if flat.contains("a pool with that name already exists") {
        return ImportRefusal::NameExists;
    }
    ImportRefusal::Other(first_line(stderr).to_string())
}

// ---------------------------------------------------------------------------------------------------------------
// zpool list -H -o name,health / zpool get -H / zpool status -x / zfs list -H
// ---------------------------------------------------------------------------------------------------------------

/// The `health` property of a pool (`zpool list -o health`, `zpool status` `state:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolHealth {
    Online,
    Degraded,
    Faulted,
    Offline,
    Unavail,
    Removed,
    /// I/O suspended (e.g. MMP writes failed: another host may import it). Never healthy.
    Suspended,
    /// A word this parser does not know: treated as unhealthy.
    Other(String),
}

impl PoolHealth {
    /// Parse a health word (case as zpool prints it: upper case).
    pub fn parse(word: &str) -> PoolHealth {
        match word.trim() {
            "ONLINE" => PoolHealth::Online,
            "DEGRADED" => PoolHealth::Degraded,
            "FAULTED" => PoolHealth::Faulted,
            "OFFLINE" => PoolHealth::Offline,
            "UNAVAIL" => PoolHealth::Unavail,
            "REMOVED" => PoolHealth::Removed,
            "SUSPENDED" => PoolHealth::Suspended,
            other => PoolHealth::Other(other.to_string()),
        }
    }

    /// ONLINE and DEGRADED serve data (as ocf:heartbeat:ZFS judges); everything else does not.
    pub fn is_healthy(&self) -> bool {
        matches!(self, PoolHealth::Online | PoolHealth::Degraded)
    }
}

impl fmt::Display for PoolHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            PoolHealth::Online => "ONLINE",
            PoolHealth::Degraded => "DEGRADED",
            PoolHealth::Faulted => "FAULTED",
            PoolHealth::Offline => "OFFLINE",
            PoolHealth::Unavail => "UNAVAIL",
            PoolHealth::Removed => "REMOVED",
            PoolHealth::Suspended => "SUSPENDED",
            PoolHealth::Other(s) => s,
        };
        f.write_str(s)
    }
}

/// One line of `zpool list -H -o name,health`: an imported pool and its health.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolListEntry {
    pub name: String,
    pub health: PoolHealth,
}

/// Fields of a `-H` line: TAB-separated; lines without a TAB (hand-written or simulated) split on whitespace.
fn h_fields(line: &str) -> Vec<&str> {
    if line.contains('\t') {
        line.split('\t').map(str::trim).collect()
    } else {
        line.split_whitespace().collect()
    }
}

/// `zpool list -H -o name,health [POOL]`. No pools imported = empty output (2.1.11) or `no pools available`.
pub fn parse_zpool_list_health(stdout: &str) -> Result<Vec<PoolListEntry>, ParseError> {
    let mut out = Vec::new();
    for line in stdout.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed == "no pools available" {
            continue;
        }
        match h_fields(line).as_slice() {
            [name, health] if !name.is_empty() && !health.is_empty() => {
                out.push(PoolListEntry { name: name.to_string(), health: PoolHealth::parse(health) })
            }
            _ => return Err(perr(format!("not a `name<TAB>health` line: {trimmed:?}"))),
        }
    }
    Ok(out)
}

/// One line of `zpool get -H [-o name,property,value[,source]] PROPS POOL`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZpoolProperty {
    pub pool: String,
    pub property: String,
    pub value: String,
    /// `local`, `default`, `-`...; `None` when the SOURCE column was not asked for.
    pub source: Option<String>,
}

/// `zpool get -H -o name,property,value multihost,cachefile POOL` (3 fields) or with the source (4 fields),
/// as `doctor` reads it. The header form without `-H` is accepted too (its `NAME PROPERTY VALUE SOURCE` line is
/// skipped).
pub fn parse_zpool_get(stdout: &str) -> Result<Vec<ZpoolProperty>, ParseError> {
    let mut out = Vec::new();
    for line in stdout.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let fields = if line.contains('\t') {
            line.split('\t').map(str::trim).map(str::to_string).collect::<Vec<_>>()
        } else {
            let t: Vec<&str> = trimmed.split_whitespace().collect();
            if t.len() >= 3 && t[0] == "NAME" && t[1] == "PROPERTY" && t[2] == "VALUE" {
                continue;
            }
            if t.len() > 4 {
                // `inherited from X` is the only multi-word SOURCE.
                let mut v: Vec<String> = t[..3].iter().map(|s| s.to_string()).collect();
                v.push(t[3..].join(" "));
                v
            } else {
                t.iter().map(|s| s.to_string()).collect()
            }
        };
        match fields.as_slice() {
            [p, k, v] => {
                out.push(ZpoolProperty { pool: p.clone(), property: k.clone(), value: v.clone(), source: None })
            }
            [p, k, v, s] => out.push(ZpoolProperty {
                pool: p.clone(),
                property: k.clone(),
                value: v.clone(),
                source: Some(s.clone()),
            }),
            _ => return Err(perr(format!("not a `pool property value [source]` line: {trimmed:?}"))),
        }
    }
    Ok(out)
}

/// One pool's block in the full `zpool status` layout (`  pool: X` / ` state: Y` / `status: ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolStatusBlock {
    pub name: String,
    /// The `state:` word (e.g. `ONLINE`, `DEGRADED`, `SUSPENDED`).
    pub state: Option<String>,
    /// The first line of `status:`, when the pool has a problem to explain.
    pub status: Option<String>,
}

/// What `zpool status [-x] [POOL]` said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ZpoolStatus {
    /// `all pools are healthy` (`zpool status -x` without a pool).
    pub all_healthy: bool,
    /// Pools reported by `pool 'X' is healthy` (`zpool status -x X`).
    pub healthy: Vec<String>,
    /// Pools printed in full (`zpool status`, or `-x` for a pool with a problem).
    pub pools: Vec<PoolStatusBlock>,
    /// `no pools available`.
    pub no_pools: bool,
}

impl ZpoolStatus {
    /// The full block of one pool, if printed.
    pub fn pool(&self, name: &str) -> Option<&PoolStatusBlock> {
        self.pools.iter().find(|p| p.name == name)
    }
}

/// `zpool status [-x] [POOL]`, parsed by its `key: value` lines whatever their indent.
pub fn parse_zpool_status(stdout: &str) -> Result<ZpoolStatus, ParseError> {
    let mut st = ZpoolStatus::default();
    let mut seen_any = false;
    for line in stdout.lines() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        seen_any = true;
        if t == "all pools are healthy" {
            st.all_healthy = true;
        } else if t == "no pools available" {
            st.no_pools = true;
        } else if let Some(name) = t.strip_prefix("pool '").and_then(|r| r.strip_suffix("' is healthy")) {
            st.healthy.push(name.to_string());
        } else if let Some(name) = t.strip_prefix("pool:") {
            st.pools.push(PoolStatusBlock { name: name.trim().to_string(), state: None, status: None });
        } else if let Some(state) = t.strip_prefix("state:") {
            if let Some(p) = st.pools.last_mut() {
                p.state.get_or_insert_with(|| state.trim().to_string());
            }
        } else if let Some(status) = t.strip_prefix("status:") {
            if let Some(p) = st.pools.last_mut() {
                p.status.get_or_insert_with(|| status.trim().to_string());
            }
        }
    }
    if seen_any && !st.all_healthy && !st.no_pools && st.healthy.is_empty() && st.pools.is_empty() {
        return Err(perr(format!("not a zpool status output: {:?}", first_line(stdout))));
    }
    Ok(st)
}

/// One line of `zfs list -H`: `name used avail refer mountpoint`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZfsListEntry {
    pub name: String,
    pub used: String,
    pub avail: String,
    pub refer: String,
    pub mountpoint: String,
}

/// `zfs list -H [DATASET]` (TAB-separated; whitespace-separated accepted, the mount point taking the rest).
pub fn parse_zfs_list(stdout: &str) -> Result<Vec<ZfsListEntry>, ParseError> {
    let mut out = Vec::new();
    for line in stdout.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let f: Vec<String> = if line.contains('\t') {
            line.split('\t').map(|s| s.trim().to_string()).collect()
        } else {
            let t: Vec<&str> = trimmed.split_whitespace().collect();
            if t.len() < 5 {
                return Err(perr(format!("not a `zfs list -H` line: {trimmed:?}")));
            }
            let mut v: Vec<String> = t[..4].iter().map(|s| s.to_string()).collect();
            v.push(t[4..].join(" "));
            v
        };
        match f.as_slice() {
            [name, used, avail, refer, mountpoint] if !name.is_empty() => out.push(ZfsListEntry {
                name: name.clone(),
                used: used.clone(),
                avail: avail.clone(),
                refer: refer.clone(),
                mountpoint: mountpoint.clone(),
            }),
            _ => return Err(perr(format!("not a `zfs list -H` line: {trimmed:?}"))),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------------
// df -ht lustre
// ---------------------------------------------------------------------------------------------------------------

/// One filesystem line of `df -h`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DfEntry {
    /// What is mounted: `pool/dataset` for ZFS, the device path for ldiskfs.
    pub source: String,
    pub size: String,
    pub used: String,
    pub avail: String,
    /// `Use%` as printed (`1%`, or `-`).
    pub use_percent: String,
    pub mountpoint: String,
}

fn is_percent(tok: &str) -> bool {
    tok == "-" || tok.strip_suffix('%').is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

/// `df -h[t lustre]`. A data line is recognised by its shape — `Use%` followed by an absolute mount point —
/// not by the header (`Filesystem` or `File system`) nor by column widths. A source too long for its column
/// sits alone on its line and the numbers follow on the next line; that is joined back.
pub fn parse_df(stdout: &str) -> Result<Vec<DfEntry>, ParseError> {
    let mut out = Vec::new();
    let mut pending: Option<String> = None;
    let mut first = true;
    for line in stdout.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.is_empty() {
            continue;
        }
        let is_first = std::mem::replace(&mut first, false);
        let anchor = (3..t.len().saturating_sub(1)).find(|&i| is_percent(t[i]) && t[i + 1].starts_with('/'));
        match anchor {
            Some(i) => {
                let source = if i == 3 {
                    pending.take().ok_or_else(|| perr(format!("df line without a source: {:?}", line.trim())))?
                } else {
                    if pending.is_some() {
                        return Err(perr(format!("df: source {:?} has no numbers", pending.unwrap_or_default())));
                    }
                    t[..i - 3].join(" ")
                };
                out.push(DfEntry {
                    source,
                    size: t[i - 3].to_string(),
                    used: t[i - 2].to_string(),
                    avail: t[i - 1].to_string(),
                    use_percent: t[i].to_string(),
                    mountpoint: t[i + 1..].join(" "),
                });
            }
            None if t.len() == 1 && !is_first => {
                if let Some(p) = pending.replace(t[0].to_string()) {
                    return Err(perr(format!("df: source {p:?} has no numbers")));
                }
            }
            None if is_first => {} // the header, whatever its words
            None => return Err(perr(format!("not a df line: {:?}", line.trim()))),
        }
    }
    if let Some(p) = pending {
        return Err(perr(format!("df: source {p:?} has no numbers")));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------------
// lctl dl / lctl get_param -n health_check
// ---------------------------------------------------------------------------------------------------------------

/// One line of `lctl dl` (`"%3d %s %s %s %s %d"`: index status type name uuid refcount).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LctlDevice {
    pub index: u32,
    /// `UP` (set up), `ST` (stopping), `IN` (inactive), `AT` (attached), `--`.
    pub status: String,
    /// The obd type, e.g. `osd-zfs`, `mgs`, `mdt`, `obdfilter`.
    pub kind: String,
    /// The device name, e.g. `MGS`, `lfs-MDT0000`, `fs00-OST0000`.
    pub name: String,
    pub uuid: String,
    pub refcount: i64,
}

/// `lctl dl` (also `/sys/fs/lustre/devices`). A `host: ` prefix (pdsh/psh) is dropped. Empty output = no
/// devices. A line of another shape is an error.
pub fn parse_lctl_dl(stdout: &str) -> Result<Vec<LctlDevice>, ParseError> {
    let mut out = Vec::new();
    for line in stdout.lines() {
        let mut t: Vec<&str> = line.split_whitespace().collect();
        if t.is_empty() {
            continue;
        }
        if t.len() == 7 && t[0].ends_with(':') {
            t.remove(0);
        }
        let bad = || perr(format!("not an `lctl dl` line: {:?}", line.trim()));
        if t.len() != 6 {
            return Err(bad());
        }
        let index = t[0].parse::<u32>().map_err(|_| bad())?;
        let refcount = t[5].parse::<i64>().map_err(|_| bad())?;
        out.push(LctlDevice {
            index,
            status: t[1].to_string(),
            kind: t[2].to_string(),
            name: t[3].to_string(),
            uuid: t[4].to_string(),
            refcount,
        });
    }
    Ok(out)
}

/// What `lctl get_param -n health_check` says about the Lustre services of this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LustreHealth {
    Healthy,
    /// `NOT HEALTHY` (older releases list `device X reported unhealthy` lines first: kept as detail).
    NotHealthy(String),
    /// A Lustre assertion fired: the node must be rebooted.
    Lbug,
}

/// `lctl get_param -n health_check`: `healthy` | `NOT HEALTHY` | `LBUG`.
pub fn parse_health_check(stdout: &str) -> Result<LustreHealth, ParseError> {
    let first = first_line(stdout);
    if first == "healthy" {
        return Ok(LustreHealth::Healthy);
    }
    if stdout.lines().any(|l| l.trim() == "LBUG") {
        return Ok(LustreHealth::Lbug);
    }
    if stdout.lines().any(|l| l.trim() == "NOT HEALTHY") {
        return Ok(LustreHealth::NotHealthy(flatten(stdout)));
    }
    Err(perr(format!("not a health_check answer: {first:?}")))
}

// ---------------------------------------------------------------------------------------------------------------
// /proc/mounts
// ---------------------------------------------------------------------------------------------------------------

/// One line of `/proc/mounts`: `source mountpoint fstype options dump pass`, octal escapes decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    pub source: String,
    pub mountpoint: String,
    pub fstype: String,
    pub options: String,
}

impl MountEntry {
    /// A Lustre server target: fstype `lustre` (or `lustre_tgt`, Lustre ≥ 2.13 with `mount -t lustre_tgt`),
    /// and not a client mount (whose source is `nid[:nid]:/fsname`).
    pub fn is_lustre_target(&self) -> bool {
        (self.fstype == "lustre" || self.fstype == "lustre_tgt") && !self.source.contains(":/")
    }

    /// A mounted ZFS dataset (`pool/dataset`, fstype `zfs`): what a `fstype = "zfs"` target mounts.
    pub fn is_zfs_dataset(&self) -> bool {
        self.fstype == "zfs" && self.source.contains('/')
    }
}

/// Decode the kernel's `\ooo` escapes (space `\040`, tab `\011`, newline `\012`, backslash `\134`).
fn unescape_mount_field(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') as u32 * 64 + (b[i + 2] - b'0') as u32 * 8 + (b[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `cat /proc/mounts`. Every non-empty line must have at least `source mountpoint fstype options`.
pub fn parse_proc_mounts(text: &str) -> Result<Vec<MountEntry>, ParseError> {
    let mut out = Vec::new();
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        if t.is_empty() {
            continue;
        }
        if t.len() < 4 {
            return Err(perr(format!("not a /proc/mounts line: {:?}", line.trim())));
        }
        out.push(MountEntry {
            source: unescape_mount_field(t[0]),
            mountpoint: unescape_mount_field(t[1]),
            fstype: t[2].to_string(),
            options: t[3].to_string(),
        });
    }
    Ok(out)
}

// The fixtures' parser, shared with the integration tests.
#[cfg(test)]
#[path = "../../tests/support/capture.rs"]
mod fixture_capture;

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixture's body and exit code (its framing lines dropped).
    fn capture(text: &str) -> (String, i32) {
        let c = super::fixture_capture::parse(text);
        (c.stdout, c.rc)
    }

    macro_rules! fixture {
        ($path:literal) => {
            capture(include_str!(concat!("../../tests/fixtures/", $path)))
        };
    }

    // ----- hostid ---------------------------------------------------------------------------------------------

    #[test]
    fn hostid_hex_forms() {
        assert_eq!(parse_hostid_hex("a1a1a1a1"), Some(0xa1a1a1a1));
        assert_eq!(parse_hostid_hex("0xa1a1a1a1"), Some(0xa1a1a1a1));
        assert_eq!(parse_hostid_hex(" B2B2B2B2\n"), Some(0xb2b2b2b2));
        assert_eq!(parse_hostid_hex("7f0101"), Some(0x7f0101));
        assert_eq!(parse_hostid_hex("00000000"), Some(0));
        assert_eq!(parse_hostid_hex(""), None);
        assert_eq!(parse_hostid_hex("0x"), None);
        assert_eq!(parse_hostid_hex("1a1a1a1a1"), None);
        assert_eq!(parse_hostid_hex("oss-a"), None);
        assert_eq!(parse_hostid_hex("-1"), None);
    }

    #[test]
    fn hostid_decimal_and_formats() {
        // boot2-takeover: zdb prints a1a1a1a1 as 2711724449, b2b2b2b2 as 2998055602.
        assert_eq!(parse_hostid_decimal("2711724449"), Some(0xa1a1a1a1));
        assert_eq!(parse_hostid_decimal("2998055602"), Some(0xb2b2b2b2));
        assert_eq!(parse_hostid_decimal("4294967296"), None);
        assert_eq!(parse_hostid_decimal("0xa1"), None);
        assert_eq!(format_hostid_decimal(0xa1a1a1a1), "2711724449");
        assert_eq!(format_hostid_hex(0xa1a1a1a1), "a1a1a1a1");
        assert_eq!(format_hostid_hex(0x7f0101), "7f0101");
        assert_eq!(format_hostid_padded(0x7f0101), "007f0101");
        for id in [0u32, 1, 0x7f0101, 0xa1a1a1a1, u32::MAX] {
            assert_eq!(parse_hostid_hex(&format_hostid_hex(id)), Some(id));
            assert_eq!(parse_hostid_hex(&format_hostid_padded(id)), Some(id));
            assert_eq!(parse_hostid_decimal(&format_hostid_decimal(id)), Some(id));
        }
    }

    // ----- zdb ------------------------------------------------------------------------------------------------

    #[test]
    fn zdb_e_c_real_capture_state0() {
        let (out, rc) = fixture!("openzfs-2.1.11/boot2-03-zdb-e-C-state0.txt");
        assert_eq!(rc, 0);
        let label = parse_zdb_mos_config(&out).unwrap();
        assert_eq!(
            label,
            ZdbLabel {
                name: "tank".into(),
                state: PoolState::Active,
                hostid: Some(0xa1a1a1a1),
                hostname: "oss-a".into()
            }
        );
    }

    #[test]
    fn zdb_e_c_grep_state1_variant() {
        // boot2-takeover/16: after oss-b exported the pool: state 1, oss-b's hostid. A grep: no header, no name.
        let (out, _) = fixture!("openzfs-2.1.11/boot2-16-zdb-e-C-grep-state1.txt");
        let f = parse_zdb_fields(&out).unwrap();
        assert_eq!(
            f,
            ZdbFields {
                name: None,
                state: Some(PoolState::Exported),
                hostid: Some(0xb2b2b2b2),
                hostname: Some("oss-b".into())
            }
        );
        assert!(parse_zdb_label(&out).is_err(), "no name: not a whole config");
        assert!(parse_zdb_mos_config(&out).is_err(), "no MOS header");
        // The same keys inside a whole MOS config parse to an EXPORTED label.
        let (full, _) = fixture!("openzfs-2.1.11/boot2-03-zdb-e-C-state0.txt");
        let full = full
            .replace("state: 0", "state: 1")
            .replace("hostid: 2711724449", "hostid: 2998055602")
            .replace("'oss-a'", "'oss-b'");
        let label = parse_zdb_mos_config(&full).unwrap();
        assert_eq!(
            (label.state, label.hostid, label.hostname.as_str()),
            (PoolState::Exported, Some(0xb2b2b2b2), "oss-b")
        );
    }

    #[test]
    fn zdb_doc_sample_with_empty_hostname() {
        let (out, _) = fixture!("derived/zdb-e-C-hostname-empty.txt");
        let label = parse_zdb_mos_config(&out).unwrap();
        assert_eq!(label.hostname, "");
        assert_eq!(label.hostid, Some(2746588504));
        assert_eq!(format_hostid_hex(2746588504), "a3b59d58"); // as the doc's "previously in use" message prints it
        assert_eq!(label.state, PoolState::Active);
    }

    #[test]
    fn zdb_l_label_and_grep_forms() {
        let (out, _) = fixture!("derived/zdb-l-label.txt");
        let label = parse_zdb_label(&out).unwrap();
        assert_eq!(
            label,
            ZdbLabel {
                name: "ost0pool".into(),
                state: PoolState::Active,
                hostid: Some(0x7f0101),
                hostname: "oss1".into()
            }
        );
        // Real `zdb -l | grep`: 4-space indent; the nested `create_txg` (8 spaces) is not the top level.
        let (out, _) = fixture!("openzfs-2.1.11/boot1-13-zdb-l-grep.txt");
        let label = parse_zdb_label(&out).unwrap();
        assert_eq!((label.name.as_str(), label.state, label.hostid), ("tank", PoolState::Active, Some(0xa1a1a1a1)));
        let (out, _) = fixture!("openzfs-2.1.11/boot3-tryB-08-zdb-l-grep.txt");
        let f = parse_zdb_fields(&out).unwrap();
        assert_eq!((f.state, f.hostname.as_deref()), (Some(PoolState::Active), Some("oss-a")));
        let (out, _) = fixture!("openzfs-2.1.11/boot4-09-zdb-l-grep-state1.txt");
        let f = parse_zdb_fields(&out).unwrap();
        assert_eq!((f.state, f.hostid), (Some(PoolState::Exported), Some(0xb2b2b2b2)));
    }

    #[test]
    fn zdb_keys_in_any_order_indent_and_with_extra_lines() {
        let text = "\nsome warning line\nMOS Configuration:\n\thostname: 'oss-a'\n\tvdev_tree:\n\t\tname: 'not-this'\n\t\tstate: 7\n\tstate: 1\n\tcom.delphix:has_per_vdev_zaps\n\tname: 'tank'\n\tversion: 5000\n";
        let label = parse_zdb_mos_config(text).unwrap();
        assert_eq!(
            label,
            ZdbLabel { name: "tank".into(), state: PoolState::Exported, hostid: None, hostname: "oss-a".into() }
        );
        // A deeper line whose parent was filtered out (a `grep` leftover) is not top level.
        let orphan = "    name: 'tank'\n    state: 0\n        state: 5\n    hostname: 'oss-a'\n        hostid: 7\n";
        let label = parse_zdb_label(orphan).unwrap();
        assert_eq!((label.state, label.hostid), (PoolState::Active, None));
    }

    #[test]
    fn zdb_failures_are_errors() {
        let (out, rc) = fixture!("openzfs-2.1.11/boot1-11-zdb-C-cannot-open.txt");
        assert_eq!(rc, 1);
        assert!(parse_zdb_mos_config(&out).is_err());
        assert!(parse_zdb_mos_config("").is_err());
        // A nested `state` does not stand in for a missing top-level one.
        let nested = "MOS Configuration:\n        name: 'tank'\n        hostname: 'oss-a'\n        vdev_tree:\n            state: 0\n";
        assert!(parse_zdb_mos_config(nested).unwrap_err().0.contains("state"));
        let no_host = "MOS Configuration:\n        name: 'tank'\n        state: 0\n";
        assert!(parse_zdb_mos_config(no_host).unwrap_err().0.contains("hostname"));
        let big = "MOS Configuration:\n name: 'tank'\n state: 0\n hostid: 4294967296\n hostname: 'a'\n";
        assert!(parse_zdb_mos_config(big).is_err());
        let hex = "MOS Configuration:\n name: 'tank'\n state: 0\n hostid: 0xa1a1a1a1\n hostname: 'a'\n";
        assert!(parse_zdb_mos_config(hex).is_err());
        let unterminated = "MOS Configuration:\n name: 'tank\n state: 0\n hostname: 'a'\n";
        assert!(parse_zdb_mos_config(unterminated).is_err());
        // Two labels that disagree: ambiguous, never a guess.
        let two = "LABEL 0\n    name: 'tank'\n    state: 0\n    hostname: 'oss-a'\nLABEL 1\n    name: 'tank'\n    state: 1\n    hostname: 'oss-a'\n";
        assert!(parse_zdb_label(two).is_err());
        let (same, _) = fixture!("derived/zdb-l-label.txt");
        let twice = format!("{same}{}", same.replace("LABEL 0", "LABEL 2"));
        assert!(parse_zdb_label(&twice).is_ok(), "identical labels agree");
    }

    // ----- zpool import ---------------------------------------------------------------------------------------

    #[test]
    fn import_refusals_real_captures() {
        let (err, rc) = fixture!("openzfs-2.1.11/boot2-07-import-previously-in-use.txt");
        assert_eq!(rc, 1);
        assert_eq!(
            parse_import_refusal(&err),
            ImportRefusal::PreviouslyInUse { host: Some("oss-a".into()), hostid: Some(0xa1a1a1a1) }
        );
        let (err, rc) = fixture!("openzfs-2.1.11/boot3-tryB-04-import-mmp-active.txt");
        assert_eq!(rc, 1);
        assert_eq!(
            parse_import_refusal(&err),
            ImportRefusal::ActiveElsewhere { host: Some("oss-a".into()), hostid: Some(0xa1a1a1a1) }
        );
        let (err, rc) = fixture!("openzfs-2.1.11/boot3-tryB-05-import-f-mmp-active.txt");
        assert_eq!(rc, 1);
        assert_eq!(
            parse_import_refusal(&err),
            ImportRefusal::ActiveElsewhere { host: Some("oss-a".into()), hostid: Some(0xa1a1a1a1) }
        );
    }

    #[test]
    fn import_refusals_doc_texts() {
        let host = Some("oss1".to_string());
        let (err, _) = fixture!("derived/import-mmp-active-doc.txt");
        assert_eq!(
            parse_import_refusal(&err),
            ImportRefusal::ActiveElsewhere { host: host.clone(), hostid: Some(0x7f0101) }
        );
        let (err, _) = fixture!("derived/import-f-mmp-eremoteio-doc.txt");
        assert_eq!(
            parse_import_refusal(&err),
            ImportRefusal::ActiveElsewhere { host: host.clone(), hostid: Some(0x7f0101) }
        );
        let (err, _) = fixture!("derived/import-previously-in-use-doc.txt");
        assert_eq!(parse_import_refusal(&err), ImportRefusal::PreviouslyInUse { host, hostid: Some(0x7f0101) });
        let (err, _) = fixture!("derived/import-hostid-unset-doc.txt");
        assert_eq!(parse_import_refusal(&err), ImportRefusal::HostidNotSet);
        let (err, _) = fixture!("derived/import-no-such-pool.txt");
        assert_eq!(parse_import_refusal(&err), ImportRefusal::NoSuchPool);
        let (err, _) = fixture!("derived/import-name-exists.txt");
        assert_eq!(parse_import_refusal(&err), ImportRefusal::NameExists);
        assert_eq!(
            parse_import_refusal("cannot import 'tank': pool is imported on a different host\n"),
            ImportRefusal::ActiveElsewhere { host: None, hostid: None }
        );
        assert_eq!(
            parse_import_refusal("\ncannot import 'tank': I/O error\n\tDestroy and re-create the pool\n"),
            ImportRefusal::Other("cannot import 'tank': I/O error".into())
        );
    }

    // ----- zpool list / get / status, zfs list ----------------------------------------------------------------

    #[test]
    fn zpool_list_health() {
        let (out, _) = fixture!("openzfs-2.1.11/boot1-08-zpool-list-H-name-health.txt");
        assert_eq!(
            parse_zpool_list_health(&out).unwrap(),
            vec![PoolListEntry { name: "tank".into(), health: PoolHealth::Online }]
        );
        let (out, rc) = fixture!("openzfs-2.1.11/boot3-tryB-06-zpool-list-H-empty.txt");
        assert_eq!((rc, parse_zpool_list_health(&out).unwrap()), (0, vec![]));
        assert_eq!(parse_zpool_list_health("no pools available\n").unwrap(), vec![]);
        let (out, _) = fixture!("derived/zpool-list-H-suspended.txt");
        let list = parse_zpool_list_health(&out).unwrap();
        assert_eq!(list[0].health, PoolHealth::Suspended);
        assert!(!list[0].health.is_healthy());
        assert!(PoolHealth::parse("DEGRADED").is_healthy());
        for bad in ["FAULTED", "UNAVAIL", "OFFLINE", "REMOVED", "WEIRD"] {
            assert!(!PoolHealth::parse(bad).is_healthy(), "{bad}");
        }
        assert_eq!(parse_zpool_list_health("tank    ONLINE\n").unwrap()[0].name, "tank");
        assert!(parse_zpool_list_health("tank\n").is_err());
        assert!(parse_zpool_list_health("tank\tONLINE\textra\n").is_err());
    }

    #[test]
    fn zpool_get_h_and_header_forms() {
        let (out, _) = fixture!("derived/zpool-get-H-multihost-cachefile.txt");
        assert_eq!(
            parse_zpool_get(&out).unwrap(),
            vec![
                ZpoolProperty { pool: "tank".into(), property: "multihost".into(), value: "on".into(), source: None },
                ZpoolProperty { pool: "tank".into(), property: "cachefile".into(), value: "none".into(), source: None },
            ]
        );
        let (out, _) = fixture!("openzfs-2.1.11/boot1-05-zpool-get-multihost-cachefile.txt");
        let props = parse_zpool_get(&out).unwrap();
        assert_eq!(props.len(), 2);
        assert_eq!((props[0].property.as_str(), props[0].value.as_str()), ("multihost", "on"));
        assert_eq!(props[1].source.as_deref(), Some("local"));
        let inherited = parse_zpool_get("tank\tcomment\tmy pool\tlocal\n").unwrap();
        assert_eq!(inherited[0].value, "my pool");
        assert!(parse_zpool_get("tank\tmultihost\n").is_err());
    }

    #[test]
    fn zpool_status_forms() {
        let (out, _) = fixture!("openzfs-2.1.11/boot1-06-zpool-status-x.txt");
        assert!(parse_zpool_status(&out).unwrap().all_healthy);
        let (out, _) = fixture!("derived/zpool-status-x-pool-healthy.txt");
        assert_eq!(parse_zpool_status(&out).unwrap().healthy, vec!["tank".to_string()]);
        let (out, _) = fixture!("openzfs-2.1.11/boot1-07-zpool-status-tank.txt");
        let st = parse_zpool_status(&out).unwrap();
        assert_eq!(st.pool("tank").unwrap().state.as_deref(), Some("ONLINE"));
        assert!(st.healthy.is_empty());
        let (out, _) = fixture!("derived/zpool-status-x-suspended.txt");
        let st = parse_zpool_status(&out).unwrap();
        let block = st.pool("tank").unwrap();
        assert_eq!(block.state.as_deref(), Some("SUSPENDED"));
        assert!(block.status.as_deref().unwrap().starts_with("The pool is suspended"));
        assert!(parse_zpool_status("no pools available\n").unwrap().no_pools);
        assert!(parse_zpool_status("segmentation fault\n").is_err());
    }

    #[test]
    fn zfs_list_h() {
        let (out, _) = fixture!("openzfs-2.1.11/boot1-09-zfs-list-H.txt");
        let list = parse_zfs_list(&out).unwrap();
        assert_eq!(list.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["tank", "tank/ost0"]);
        assert_eq!(list[1].mountpoint, "/tank/ost0");
        assert_eq!(list[1].avail, "352M");
        let (out, _) = fixture!("openzfs-2.1.11/boot2-12-zfs-list-H.txt");
        assert_eq!(parse_zfs_list(&out).unwrap()[0].used, "168K");
        assert_eq!(parse_zfs_list("tank/ost0  24K  352M  24K  /tank/ost 0\n").unwrap()[0].mountpoint, "/tank/ost 0");
        assert!(parse_zfs_list("tank/ost0\t24K\n").is_err());
    }

    // ----- df, lctl, /proc/mounts -----------------------------------------------------------------------------

    #[test]
    fn df_header_words_do_not_matter() {
        let (out, _) = fixture!("derived/df-ht-lustre-file-system.txt");
        assert_eq!(
            parse_df(&out).unwrap(),
            vec![DfEntry {
                source: "mgspool/mgt".into(),
                size: "960M".into(),
                used: "2.2M".into(),
                avail: "956M".into(),
                use_percent: "1%".into(),
                mountpoint: "/lfs/mgt".into(),
            }]
        );
        let (out, _) = fixture!("derived/df-ht-lustre-ldiskfs.txt");
        let df = parse_df(&out).unwrap();
        assert_eq!((df[0].source.as_str(), df[0].mountpoint.as_str()), ("/dev/sdb", "/lfs/mdt0"));
        assert_eq!((df[1].source.as_str(), df[1].mountpoint.as_str()), ("mgspool/mgt", "/lfs/mgt"));
        // No header at all.
        assert_eq!(parse_df("tank/ost0 352M 24K 352M 1% /lustre/ost0\n").unwrap()[0].source, "tank/ost0");
    }

    #[test]
    fn df_wrapped_long_source() {
        let (out, _) = fixture!("derived/df-ht-lustre-wrapped.txt");
        let df = parse_df(&out).unwrap();
        assert_eq!(df.len(), 2);
        assert_eq!(df[0].source, "/dev/disk/by-id/dm-uuid-mpath-3600a098038304437415d4b6a59684a52");
        assert_eq!(
            (df[0].size.as_str(), df[0].use_percent.as_str(), df[0].mountpoint.as_str()),
            ("7.3T", "17%", "/lfs/ost3")
        );
        assert_eq!(df[1].source, "ostpool/ost0");
        assert!(parse_df("Filesystem Size Used Avail Use% Mounted on\n/dev/sdb\n").is_err(), "source without numbers");
        assert!(parse_df("Filesystem Size Used Avail Use% Mounted on\ngarbage here\n").is_err());
        assert!(parse_df("Filesystem Size Used Avail Use% Mounted on\n").unwrap().is_empty());
    }

    #[test]
    fn lctl_dl_samples() {
        let (out, _) = fixture!("derived/lctl-dl-mgs-zfs.txt");
        let dl = parse_lctl_dl(&out).unwrap();
        assert_eq!(dl.len(), 3);
        assert_eq!(
            dl[1],
            LctlDevice {
                index: 1,
                status: "UP".into(),
                kind: "mgs".into(),
                name: "MGS".into(),
                uuid: "MGS".into(),
                refcount: 7
            }
        );
        let (out, _) = fixture!("derived/lctl-dl-oss-psh.txt");
        let dl = parse_lctl_dl(&out).unwrap();
        assert_eq!((dl[3].kind.as_str(), dl[3].name.as_str(), dl[3].refcount), ("obdfilter", "fs00-OST0000", 4));
        let (out, _) = fixture!("derived/lctl-dl-mds-ldiskfs.txt");
        let dl = parse_lctl_dl(&out).unwrap();
        assert_eq!(dl.len(), 9);
        assert!(dl.iter().any(|d| d.kind == "mdt" && d.name == "gcfs-MDT0000" && d.status == "UP"));
        assert_eq!(parse_lctl_dl("").unwrap(), vec![]);
        assert!(parse_lctl_dl("  0 UP osd-zfs MGS-osd\n").is_err());
        assert!(parse_lctl_dl("  x UP osd-zfs MGS-osd MGS-osd_UUID 5\n").is_err());
    }

    #[test]
    fn health_check_answers() {
        let (out, _) = fixture!("derived/health-check-healthy.txt");
        assert_eq!(parse_health_check(&out).unwrap(), LustreHealth::Healthy);
        let (out, _) = fixture!("derived/health-check-not-healthy.txt");
        assert!(matches!(parse_health_check(&out).unwrap(), LustreHealth::NotHealthy(_)));
        let (out, _) = fixture!("derived/health-check-lbug.txt");
        assert_eq!(parse_health_check(&out).unwrap(), LustreHealth::Lbug);
        let older = "device lfs-OST0000 reported unhealthy\nNOT HEALTHY\n";
        assert_eq!(parse_health_check(older).unwrap(), LustreHealth::NotHealthy(flatten(older)));
        assert!(parse_health_check("").is_err());
        assert!(parse_health_check("error: get_param: param_path 'health_check': No such file or directory\n").is_err());
    }

    #[test]
    fn proc_mounts() {
        let (out, _) = fixture!("derived/proc-mounts.txt");
        let m = parse_proc_mounts(&out).unwrap();
        assert_eq!(m.len(), 6);
        let targets: Vec<(&str, &str)> =
            m.iter().filter(|e| e.is_lustre_target()).map(|e| (e.source.as_str(), e.mountpoint.as_str())).collect();
        assert_eq!(targets, [("tank/ost0", "/lustre/ost0"), ("/dev/sdb", "/lfs/mdt 0")]);
        assert_eq!(m[4].fstype, "lustre_tgt");
        assert!(!m[5].is_lustre_target(), "a client mount is not a target");
        assert_eq!(unescape_mount_field("a\\011b\\134c\\0"), "a\tb\\c\\0");
        assert!(parse_proc_mounts("tank/ost0 /lustre/ost0\n").is_err());
    }
}
