//! Manual pages and shell completions, generated from the command line's clap definition (`main.rs` passes
//! its `clap::Command` in), so that they cannot drift from `--help`.
//!
//! - `failoverd completions SHELL` prints a completion script ([`completions`]).
//! - `failoverd manpages DIR` (hidden; used by `scripts/package`) writes `failoverd.8`, one
//!   `failoverd-SUBCOMMAND.8` per visible subcommand, and `failoverd.toml.5` ([`write_manpages`]). The
//!   configuration reference `failoverd.toml.5` is hand-written roff kept in `docs/man/` and compiled in;
//!   `tests/it/packaging.rs` fails when a configuration key exists that it does not describe.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The default configuration file: the systemd unit, the README and the `--config` defaults all name it.
pub const DEFAULT_CONFIG: &str = "/etc/failoverd/failoverd.toml";

/// The configuration reference, failoverd.toml(5).
pub const CONFIG_PAGE: &str = include_str!("../docs/man/failoverd.toml.5");

/// The manual section of the daemon's pages: system administration commands.
const SECTION: &str = "8";

/// Write the completion script of `shell` for `cmd` (named `failoverd`) to `out`. Hidden subcommands (lab
/// and packaging helpers) are left out: clap_complete would offer them.
pub fn completions(shell: clap_complete::Shell, cmd: &clap::Command, out: &mut dyn Write) {
    let mut visible = clap::Command::new("failoverd")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(true)
        .subcommands(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    clap_complete::generate(shell, &mut visible, "failoverd", out);
}

/// Sections appended to failoverd(8) after the generated ones.
fn main_page_extra(version: &str, subcommands_see_also: &str) -> String {
    format!(
        r#".SH FILES
.TP
.I {DEFAULT_CONFIG}
The cluster configuration, the same file on every node; see
.BR failoverd.toml (5).
Check it with
.BR "failoverd check-config" .
.TP
.I /etc/failoverd/
Configuration, cluster key and fence secrets (mode 0700, owner root).
.TP
.I /var/lib/failoverd/
Default
.BR state_dir :
incarnation counter and journal (fence confirmations, maintenance, operations in progress).
.TP
.I /run/failoverd/control.sock
Default
.BR control_socket ,
used by
.BR status ,
.BR migrate ,
.BR standby ,
.B fence
and the other operator commands.
.TP
.I /usr/lib/systemd/system/failoverd.service
The systemd unit: runs
.B failoverd run
when
.I {DEFAULT_CONFIG}
exists. Stopping it is a graceful leave (the node's targets move to their next node first).
.TP
.I /usr/share/doc/failoverd/examples/
Example configurations and the lab fence agent
.BR fence_failoverd_lab .
.TP
.I /usr/share/failoverd/
A Grafana dashboard and Prometheus alert rules for the series served on
.BR metrics_listen .
.SH EXIT STATUS
0 on success; 1 when a command failed, a check found a problem, or the daemon refused a request or could not
be reached (the reason is printed on standard error); 2 for a usage error.
.SH SEE ALSO
.BR failoverd.toml (5),
{subcommands_see_also}\
.BR systemctl (1),
.BR zpool (8),
.BR zdb (8),
.BR ipmitool (1),
.BR snmpset (1).
.PP
/usr/share/doc/failoverd/README.md and /usr/share/doc/failoverd/coming-from-pacemaker.md.
.SH VERSION
{version}
"#
    )
}

/// The date in the pages' title line: `$SOURCE_DATE_EPOCH` (scripts/package sets the commit's time, so that
/// a package build is reproducible), else today; as YYYY-MM-DD.
fn page_date() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    });
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The visible subcommands of `cmd`, as (name, page name).
fn visible_subcommands(cmd: &clap::Command) -> Vec<(String, String)> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| (s.get_name().to_string(), format!("{}-{}", cmd.get_name(), s.get_name())))
        .collect()
}

/// Render one page: title, NAME, SYNOPSIS, DESCRIPTION, OPTIONS, SUBCOMMANDS, then `extra` roff.
fn render(man: clap_mangen::Man, cmd: &clap::Command, extra: &str) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut out)?;
    }
    out.extend_from_slice(extra.as_bytes());
    Ok(out)
}

/// Write `failoverd.8`, `failoverd-SUBCOMMAND.8` for every visible subcommand and `failoverd.toml.5` into
/// `dir` (created if missing). Returns the files written.
pub fn write_manpages(cmd: clap::Command, version: &str, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    // `help` is clap's own subcommand: no page of its own
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let date = page_date();
    let source = format!("failoverd {version}");
    let manual = "System Administration";
    let subs = visible_subcommands(&cmd);
    let mut written = Vec::new();

    // failoverd(8): the whole command with its subcommand list and the FILES/SEE ALSO sections.
    let see_also: String = subs.iter().map(|(_, page)| format!(".BR {page} ({SECTION}),\n")).collect();
    let extra = main_page_extra(version, &see_also);
    let man = clap_mangen::Man::new(cmd.clone()).section(SECTION).date(date.clone()).source(source.clone()).manual(manual);
    let path = dir.join(format!("failoverd.{SECTION}"));
    std::fs::write(&path, render(man, &cmd, &extra)?)?;
    written.push(path);

    // failoverd-SUBCOMMAND(8): one per visible subcommand.
    for (name, page) in &subs {
        let Some(sub) = cmd.find_subcommand(name) else { continue };
        // clap names are &'static str (without its "string" feature); this runs once per page in a
        // short-lived process.
        let page_name: &'static str = Box::leak(page.clone().into_boxed_str());
        let sub = sub.clone().name(page_name);
        let extra = format!(
            ".SH SEE ALSO\n.BR failoverd ({SECTION}),\n.BR failoverd.toml (5).\n.SH VERSION\n{version}\n"
        );
        let man = clap_mangen::Man::new(sub.clone())
            .title(page.to_uppercase())
            .section(SECTION)
            .date(date.clone())
            .source(source.clone())
            .manual(manual);
        let path = dir.join(format!("{page}.{SECTION}"));
        std::fs::write(&path, render(man, &sub, &extra)?)?;
        written.push(path);
    }

    // failoverd.toml(5): the hand-written configuration reference.
    let path = dir.join("failoverd.toml.5");
    std::fs::write(&path, CONFIG_PAGE)?;
    written.push(path);
    Ok(written)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(super::civil_from_days(20_793), (2026, 12, 6));
    }
}
