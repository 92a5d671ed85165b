// Real command outputs kept as fixtures (tests/fixtures/, see its README.md): one parser for both framings.
// Shared by the integration tests (`support::capture`) and the parsers' unit tests (src/storage/parse.rs
// includes this file by `#[path]`), so it holds no `//!` docs and needs nothing but std.
//
//   ### CMD: zpool import -f -o cachefile=none ost0pool     (the command line)
//   ### SOURCE: ...                                          (where it was captured; any other `### ` line: framing)
//   ...stdout (the OpenZFS 2.1.11 captures merge stdout and stderr here)...
//   ### STDERR:                                              (the real-ZFS lab's wrapper: stderr follows)
//   ...stderr...
//   ### RC: 1                                                (the exit code; the line is required)

/// One captured command.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capture {
    /// The command line of `### CMD:` (empty when the capture has none).
    pub cmd: String,
    pub stdout: String,
    pub stderr: String,
    pub rc: i32,
}

/// Parse a capture; panics (naming the problem) on one without a readable `### RC:` line: a broken fixture.
pub fn parse(text: &str) -> Capture {
    let mut c = Capture::default();
    let (mut rc, mut in_err) = (None, false);
    for line in text.lines() {
        if let Some(cmd) = line.strip_prefix("### CMD: ") {
            c.cmd = cmd.to_string();
        } else if let Some(r) = line.strip_prefix("### RC: ") {
            rc = Some(r.split_whitespace().next().and_then(|n| n.parse().ok()).expect("a fixture's `### RC:` line holds a number"));
        } else if line == "### STDERR:" {
            in_err = true;
        } else if !line.starts_with("### ") {
            let buf = if in_err { &mut c.stderr } else { &mut c.stdout };
            buf.push_str(line);
            buf.push('\n');
        }
    }
    c.rc = rc.expect("a fixture has an `### RC:` line");
    c
}
