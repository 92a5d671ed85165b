//! What the Debian package ships, checked from the source tree (the installed package itself is checked by
//! `scripts/package-test`): the man pages the binary writes render without a warning, failoverd.toml(5)
//! describes every configuration key, the bash completion loads, and the repository agrees with itself on the
//! minimum Rust version, the default configuration path and the unit's documentation.
//!
//! `man` (man-db) renders the pages; without it the rendering check fails under CI=true and is skipped with a
//! warning otherwise.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::support::BIN;
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn is_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

fn have(tool: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().map(|o| o.status.success()).unwrap_or(false)
}

/// `tool` on PATH, or: under CI a failure, else a warning and `false`.
fn need(tool: &str, package: &str) -> bool {
    if have(tool) {
        return true;
    }
    assert!(!is_ci(), "{tool} is missing under CI=true: install the {package} package (scripts/test does)");
    eprintln!("warning: {tool} is missing (apt package {package}): check skipped");
    false
}

fn run(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(out.status.success(), "failoverd {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The visible subcommands, from `failoverd --help`.
fn subcommands() -> Vec<String> {
    let help = run(&["--help"]);
    let commands = help.split("Commands:").nth(1).unwrap().split("Options:").next().unwrap();
    commands
        .lines()
        .filter_map(|l| l.strip_prefix("  ").and_then(|l| l.split_whitespace().next()))
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn manpages_are_written_for_every_subcommand_and_render_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let listed = run(&["manpages", dir.path().to_str().unwrap()]);
    let mut expected: Vec<String> = vec!["failoverd.8".into(), "failoverd.toml.5".into()];
    let subs = subcommands();
    assert!(subs.len() >= 15, "{subs:?}");
    assert!(subs.contains(&"completions".to_string()) && !subs.contains(&"manpages".to_string()), "{subs:?}");
    assert!(!subs.contains(&"sim-tool".to_string()), "hidden commands get no page: {subs:?}");
    expected.extend(subs.iter().map(|s| format!("failoverd-{s}.8")));
    let mut written: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    written.sort();
    expected.sort();
    assert_eq!(written, expected);
    assert_eq!(listed.lines().count(), expected.len(), "{listed}");

    let main = std::fs::read_to_string(dir.path().join("failoverd.8")).unwrap();
    assert!(main.starts_with(".ie") || main.contains(".TH failoverd 8"), "{}", &main[..200.min(main.len())]);
    for s in &subs {
        assert!(main.contains(&format!(".BR failoverd-{s} (8)")), "failoverd.8 SEE ALSO misses failoverd-{s}(8)");
    }
    let status = std::fs::read_to_string(dir.path().join("failoverd-status.8")).unwrap();
    assert!(status.contains(".TH failoverd-status 8") || status.contains(".TH FAILOVERD-STATUS 8"), "{status}");
    assert!(status.contains("control socket"), "the options of status are documented: {status}");

    if !need("man", "man-db") {
        return;
    }
    for page in &expected {
        let out = Command::new("man")
            .args(["--warnings", "-E", "UTF-8", "-l"])
            .arg(dir.path().join(page))
            .env("MANWIDTH", "100")
            .env("MANPAGER", "cat")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && stderr.trim().is_empty(), "man -l {page}: {stderr}");
        assert!(text.contains("NAME") && text.lines().count() > 10, "{page} rendered as:\n{text}");
    }
}

/// The keys of each raw configuration section, read from the serde structs of src/config/raw.rs.
fn config_keys() -> BTreeMap<&'static str, Vec<String>> {
    let source = read("src/config/raw.rs");
    let mut keys = BTreeMap::new();
    for (strukt, section) in [
        ("RawCluster", "[cluster]"),
        ("RawNode", "[[node]]"),
        ("RawDevice", "[[fence_device]]"),
        ("RawTarget", "[[target]]"),
        ("RawWitness", "[witness]"),
    ] {
        let start = source.find(&format!("struct {strukt} {{")).unwrap_or_else(|| panic!("struct {strukt} not in src/config/raw.rs"));
        let body = &source[start..];
        let body = &body[body.find('{').unwrap() + 1..body.find('}').unwrap()];
        let fields: Vec<String> = body
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("//") && !l.starts_with('#'))
            .map(|l| l.split(':').next().unwrap().trim().trim_start_matches("pub(super) ").to_string())
            .collect();
        assert!(!fields.is_empty(), "{strukt}");
        keys.insert(section, fields);
    }
    keys
}

#[test]
fn the_config_page_describes_every_config_key_in_its_section() {
    let page = failoverd::manpages::CONFIG_PAGE;
    assert_eq!(page, read("docs/man/failoverd.toml.5"));
    let keys = config_keys();
    assert!(keys["[cluster]"].len() >= 20, "{keys:?}");
    let mut missing = Vec::new();
    for (section, fields) in &keys {
        let heading = format!(".SH {section}\n");
        let start = page.find(&heading).unwrap_or_else(|| panic!("failoverd.toml.5 has no section {section}"));
        let rest = &page[start + heading.len()..];
        let text = &rest[..rest.find("\n.SH ").unwrap_or(rest.len())];
        for key in fields {
            // a key is described when a .B/.BR line of its section names it (as the bold word)
            let described = text.lines().any(|l| {
                (l.starts_with(".B ") || l.starts_with(".BR "))
                    && l.split_whitespace().skip(1).any(|w| w.trim_matches(|c| c == '"' || c == ',') == key)
            });
            if !described {
                missing.push(format!("{section} {key}"));
            }
        }
    }
    assert!(missing.is_empty(), "docs/man/failoverd.toml.5 does not describe: {missing:?}");
}

#[test]
fn completions_are_printed_and_the_bash_one_loads() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = run(&["completions", shell]);
        assert!(script.contains("failoverd") && script.contains("check-config"), "{shell}: {script}");
        assert!(!script.contains("sim-tool"), "{shell}: hidden commands are not completed");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("failoverd.bash");
    std::fs::write(&file, run(&["completions", "bash"])).unwrap();
    let out = Command::new("bash").arg("-c").arg(format!("source {} && complete -p failoverd", file.display())).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.trim_end().ends_with(" failoverd"), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    // the completion function completes subcommands
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && COMP_WORDS=(failoverd sta) COMP_CWORD=1 COMP_LINE='failoverd sta' COMP_POINT=13 && \
             $(complete -p failoverd | sed -E 's/.*-F ([^ ]+).*/\\1/') failoverd sta failoverd && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display()
        ))
        .output()
        .unwrap();
    let replies = String::from_utf8_lossy(&out.stdout);
    assert!(replies.lines().any(|l| l.trim() == "status"), "completing `failoverd sta`: {replies:?} {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn version_names_the_wire_protocol() {
    let v = run(&["--version"]);
    assert_eq!(v.trim(), format!("failoverd {} (wire protocol {})", env!("CARGO_PKG_VERSION"), failoverd::protocol::PROTOCOL_VERSION));
}

#[test]
fn one_minimum_rust_version() {
    let cargo = read("Cargo.toml");
    let msrv = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("rust-version in Cargo.toml");
    let readme = read("README.md");
    let said: Vec<&str> = readme.match_indices("minimum Rust version is ").map(|(i, m)| &readme[i + m.len()..]).collect();
    assert!(!said.is_empty(), "README.md must say `minimum Rust version is {msrv}`");
    for s in said {
        let v: String = s.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        assert_eq!(v.trim_end_matches('.'), msrv, "README.md and Cargo.toml rust-version disagree");
    }

    // ... and it is true of Cargo.lock: no dependency built on this platform asks for a newer Rust.
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--locked", "--offline", "--format-version", "1", "--filter-platform", "x86_64-unknown-linux-gnu"])
        .current_dir(ROOT)
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let built: std::collections::BTreeSet<&str> =
        meta["resolve"]["nodes"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
    let parse = |v: &str| v.split('.').map(|x| x.parse::<u32>().unwrap()).chain(std::iter::repeat(0)).take(3).collect::<Vec<_>>();
    let ours = parse(msrv);
    let newer: Vec<String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| built.contains(p["id"].as_str().unwrap()))
        .filter_map(|p| Some((p["name"].as_str()?, p["version"].as_str()?, p["rust_version"].as_str()?)))
        .filter(|(_, _, rv)| parse(rv) > ours)
        .map(|(n, v, rv)| format!("{n} {v} needs Rust {rv}"))
        .collect();
    assert!(newer.is_empty(), "rust-version {msrv} is too old for Cargo.lock: {newer:?}");
}

#[test]
fn one_default_config_path() {
    let path = failoverd::manpages::DEFAULT_CONFIG;
    assert_eq!(path, "/etc/failoverd/failoverd.toml");
    let unit = read("config/failoverd.service");
    assert!(unit.contains(&format!("\nExecStart=/usr/sbin/failoverd run --config {path}\n")), "{unit}");
    assert!(unit.contains(&format!("\nConditionPathExists={path}\n")), "{unit}");
    for cmd in ["run", "doctor"] {
        let help = run(&[cmd, "--help"]);
        assert!(help.contains(&format!("[default: {path}]")), "failoverd {cmd} --help: {help}");
    }
    for doc in ["README.md", "docs/coming-from-pacemaker.md", "config/two-node-mds.toml", "docs/man/failoverd.toml.5"] {
        let text = read(doc);
        assert!(!text.contains("/etc/failoverd/cluster.toml"), "{doc} names /etc/failoverd/cluster.toml; the path is {path}");
    }
    assert!(read("README.md").contains(path));
}

#[test]
fn the_unit_points_at_installed_man_pages() {
    let unit = read("config/failoverd.service");
    let docs = unit.lines().find_map(|l| l.strip_prefix("Documentation=")).expect("Documentation=");
    let dir = tempfile::tempdir().unwrap();
    run(&["manpages", dir.path().to_str().unwrap()]);
    assert!(docs.split_whitespace().next() == Some("man:failoverd(8)"), "{docs}");
    for uri in docs.split_whitespace() {
        let page = uri.strip_prefix("man:").unwrap_or_else(|| panic!("{uri}: only man pages (they are installed)"));
        let (name, section) = page.trim_end_matches(')').split_once('(').unwrap();
        assert!(dir.path().join(format!("{name}.{section}")).exists(), "{uri}: no such page is generated");
    }
}
