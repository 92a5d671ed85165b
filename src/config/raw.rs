//! The raw layer: serde structs whose every key is optional; the values are checked by the builders.

use super::*;

pub(super) type Raw = Option<Value>;

#[derive(Deserialize, Default)]
pub(super) struct RawFile {
    pub(super) cluster: Raw,
    pub(super) node: Raw,
    pub(super) fence_device: Raw,
    pub(super) target: Raw,
    pub(super) witness: Raw,
}

#[derive(Deserialize, Default)]
pub(super) struct RawCluster {
    pub(super) name: Raw,
    pub(super) key_file: Raw,
    pub(super) next_key_file: Raw,
    pub(super) links: Raw,
    pub(super) heartbeat_interval: Raw,
    pub(super) dead_after: Raw,
    pub(super) fence_delay: Raw,
    pub(super) wait_for_all: Raw,
    pub(super) stall_threshold: Raw,
    pub(super) state_dir: Raw,
    pub(super) control_socket: Raw,
    pub(super) monitor_interval: Raw,
    pub(super) monitor_failures: Raw,
    pub(super) import_timeout: Raw,
    pub(super) mount_timeout: Raw,
    pub(super) command_timeout: Raw,
    pub(super) fence_retry_initial: Raw,
    pub(super) fence_retry_max: Raw,
    pub(super) notify: Raw,
    pub(super) metrics_listen: Raw,
    pub(super) lock_memory: Raw,
    pub(super) recovery_budget: Raw,
    pub(super) control_allowed_uids: Raw,
    pub(super) disk_heartbeat: Raw,
}

#[derive(Deserialize, Default)]
pub(super) struct RawNode {
    pub(super) name: Raw,
    pub(super) addresses: Raw,
    pub(super) hostid: Raw,
    pub(super) hostname: Raw,
    pub(super) fence_priority: Raw,
    pub(super) fence_levels: Raw,
    pub(super) fencing: Raw,
}

#[derive(Deserialize, Default)]
pub(super) struct RawDevice {
    pub(super) name: Raw,
    pub(super) kind: Raw,
    pub(super) timeout: Raw,
    pub(super) power_timeout: Raw,
    pub(super) poll_interval: Raw,
    pub(super) host: Raw,
    pub(super) port: Raw,
    pub(super) username: Raw,
    pub(super) password_file: Raw,
    pub(super) lanplus: Raw,
    pub(super) privilege: Raw,
    pub(super) cipher: Raw,
    pub(super) community_file: Raw,
    pub(super) outlets: Raw,
    pub(super) profile: Raw,
    pub(super) snmp_version: Raw,
    pub(super) program: Raw,
    pub(super) options: Raw,
    pub(super) secret_options: Raw,
    pub(super) plug: Raw,
}

#[derive(Deserialize, Default)]
pub(super) struct RawTarget {
    pub(super) name: Raw,
    pub(super) kind: Raw,
    pub(super) pool: Raw,
    pub(super) dataset: Raw,
    pub(super) device: Raw,
    pub(super) mountpoint: Raw,
    pub(super) nodes: Raw,
    pub(super) start_order: Raw,
    pub(super) lctl_device: Raw,
    pub(super) mount_options: Raw,
    pub(super) health_nids: Raw,
    pub(super) check_command: Raw,
    pub(super) fstype: Raw,
}

#[derive(Deserialize, Default)]
pub(super) struct RawWitness {
    pub(super) address: Raw,
}

/// The file split into its sections, each of the right shape.
pub(super) struct RawSections {
    pub(super) cluster: Option<RawCluster>,
    pub(super) nodes: Vec<RawNode>,
    pub(super) devices: Vec<RawDevice>,
    pub(super) targets: Vec<RawTarget>,
    pub(super) witness: Option<RawWitness>,
}

pub(super) fn parse(text: &str, keys: KeyCheck) -> Result<Config, ConfigErrors> {
    let table: toml::Table = toml::from_str(text).map_err(|e| ConfigErrors::one("(toml)", syntax_message(text, &e)))?;
    let mut p = Problems::default();
    let Some(raw) = split_sections(table, &mut p) else {
        return Err(ConfigErrors { errors: p.0 });
    };
    let config = build(&raw, keys, &mut p);
    p.into_result(config)
}

/// A TOML syntax error as one line: `line 3, column 7: expected ...`.
pub(super) fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', "; ");
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// Deserialize the top level and each section, reporting unknown keys; `None` when a section has the wrong
/// shape (validation stops there: keys inside would be reported against the wrong entries).
pub(super) fn split_sections(table: toml::Table, p: &mut Problems) -> Option<RawSections> {
    let file: RawFile = deserialize_reporting(Value::Table(table), "", p).ok()?;
    let cluster = file.cluster.map(|v| single_table(v, "cluster", p)).transpose();
    let nodes = array_of_tables(file.node, "node", p);
    let devices = array_of_tables(file.fence_device, "fence_device", p);
    let targets = array_of_tables(file.target, "target", p);
    let witness = file.witness.map(|v| single_table(v, "witness", p)).transpose();
    Some(RawSections {
        cluster: cluster.ok()?,
        nodes: nodes.ok()?,
        devices: devices.ok()?,
        targets: targets.ok()?,
        witness: witness.ok()?,
    })
}

/// A `[name]` table. `Err` (reported) when it is something else.
pub(super) fn single_table<T: DeserializeOwned>(value: Value, key: &str, p: &mut Problems) -> Result<T, ()> {
    if !value.is_table() {
        p.push(key, format!("expected a table, written [{key}] on its own line, found {}", describe(&value)));
        return Err(());
    }
    deserialize_reporting(value, key, p)
}

/// `[[name]]` entries (none when absent). `Err` (reported) when the key or one of its entries is something else.
pub(super) fn array_of_tables<T: DeserializeOwned>(value: Option<Value>, key: &str, p: &mut Problems) -> Result<Vec<T>, ()> {
    let items = match value {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(Value::Table(_)) => {
            p.push(key, format!("write [[{key}]] (one entry of an array of tables), not [{key}]"));
            return Err(());
        }
        Some(other) => {
            p.push(key, format!("expected [[{key}]] entries, found {}", describe(&other)));
            return Err(());
        }
    };
    let mut out = Ok(Vec::with_capacity(items.len()));
    for (i, item) in items.into_iter().enumerate() {
        let entry_key = format!("{key}[{i}]");
        let entry = if item.is_table() {
            deserialize_reporting(item, &entry_key, p)
        } else {
            p.push(&entry_key, format!("expected a table (a [[{key}]] entry), found {}", describe(&item)));
            Err(())
        };
        match (&mut out, entry) {
            (Ok(list), Ok(raw)) => list.push(raw),
            (_, Err(())) => out = Err(()),
            (Err(()), Ok(_)) => {}
        }
    }
    out
}

/// Deserialize `value` into a raw struct, reporting every key the struct does not know with its full path.
pub(super) fn deserialize_reporting<T: DeserializeOwned>(value: Value, base: &str, p: &mut Problems) -> Result<T, ()> {
    let mut unknown = Vec::new();
    let result = serde_ignored::deserialize(value, |path| unknown.push(path_key(base, &path)));
    let known = known_fields::<T>();
    for key in unknown {
        let field = key.rsplit('.').next().unwrap_or(&key);
        let message = match suggest(field, known) {
            Some(s) => format!("unknown key (did you mean `{s}`?)"),
            None => "unknown key".to_owned(),
        };
        p.push(key, message);
    }
    result.map_err(|e| p.push(if base.is_empty() { "(toml)" } else { base }, e.message().to_owned()))
}

/// A `serde_ignored` path as a config key: `node[1].adress`.
pub(super) fn path_key(base: &str, path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => base.to_owned(),
        Path::Seq { parent, index } => format!("{}[{index}]", path_key(base, parent)),
        Path::Map { parent, key } => join_key(&path_key(base, parent), key),
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
            path_key(base, parent)
        }
    }
}

/// The field names of a derived struct, read from what it asks of its deserializer.
pub(super) fn known_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldProbe(&mut fields));
    fields
}

/// A deserializer that only records the field list of `deserialize_struct` and then fails.
pub(super) struct FieldProbe<'a>(&'a mut &'static [&'static str]);

impl<'de> serde::Deserializer<'de> for FieldProbe<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("field probe"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(serde::de::Error::custom("field probe"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// The known key closest to a misspelt one, if it is close enough to be what was meant.
pub(super) fn suggest(unknown: &str, known: &[&'static str]) -> Option<&'static str> {
    let unknown = unknown.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&unknown, k), *k))
        .filter(|(d, k)| {
            let prefix = unknown.len() >= 3 && (k.starts_with(unknown.as_str()) || unknown.starts_with(*k));
            *d <= 2usize.max(k.len() / 3) || prefix
        })
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}
