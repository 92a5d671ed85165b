//! `failoverd witness` as a real process on 127.0.0.1 serving two clusters, with two real `failoverd run`
//! daemons of one of them: the witness vote shows in `status --json`, survives the loss of one node, and
//! hostile queries (forged, another cluster's key, replayed, unknown cluster) get no reply; once the witness
//! dies, the survivor reports `witness_lost` and loses quorum.
//!
//! Every process is killed when the test ends, passed or not; every file lives in the test's temp dir.

use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use failoverd::protocol::{self, Body, Envelope, Keys, WitnessQuery};
use serde_json::{json, Value};

use crate::support::cluster::{Cluster, Spec, DEAD_AFTER_MS};
use crate::support::{free_udp_port, wait_until, Daemon, BIN};

const KEY_ALPHA: &str = "a1f0c2d3e4b5a6978812233445566778899aabbccddeeff00112233445566778";
const KEY_BETA: &str = "b2e1d0c9b8a7968574635241302f1e0d1c2b3a49586776859a4b3c2d1e0f1a2b";

/// Cluster `alpha` (nodes n1 and n2, with the witness) and the key of cluster `beta`, in one temp dir.
struct Site {
    dir: tempfile::TempDir,
    witness_port: u16,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("beta.key"), format!("{KEY_BETA}\n")).unwrap();
        Site { dir, witness_port: free_udp_port(Ipv4Addr::LOCALHOST) }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn witness_addr(&self) -> String {
        format!("127.0.0.1:{}", self.witness_port)
    }

    /// Cluster alpha's files: its key (which the witness reads too) and one config per node.
    fn alpha(&self) -> Cluster {
        let sections = format!("[witness]\naddress = \"{}\"", self.witness_addr());
        Cluster::with(&["n1", "n2"], &[], Spec { name: "alpha", key: KEY_ALPHA, sections: &sections, ..Spec::default() })
    }

    /// The witness (it has no control socket), serving `alpha` and `beta`.
    fn start_witness(&self, alpha: &Cluster) -> Daemon {
        let mut cmd = Command::new(BIN);
        cmd.args(["witness", "--listen", &self.witness_addr(), "--lease", &format!("{DEAD_AFTER_MS}ms"), "--log-format", "json"])
            .arg("--cluster")
            .arg(format!("alpha={}", alpha.key_file().display()))
            .arg("--cluster")
            .arg(format!("beta={}", self.path("beta.key").display()));
        Daemon::spawn("witness", &mut cmd, Path::new(""), &self.path("witness.log"))
    }
}

fn status(socket: &Path) -> Value {
    let out = Command::new(BIN).args(["status", "--json", "--socket"]).arg(socket).output().unwrap();
    assert!(out.status.success(), "status failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A test client of the witness: its own socket, its own sequence numbers.
struct Client {
    sock: UdpSocket,
    to: String,
}

impl Client {
    fn new(to: &str) -> Client {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        Client { sock, to: to.to_string() }
    }

    fn query(cluster: &str, node: &str, seq: u64, key: &str) -> Vec<u8> {
        let env = Envelope {
            cluster: cluster.into(),
            sender: node.into(),
            incarnation: 1,
            seq,
            body: Body::WitnessQuery(WitnessQuery { sees: vec![node.into()], cluster_size: 2 }),
        };
        protocol::encode(&env, key.as_bytes()).unwrap()
    }

    fn send(&self, bytes: &[u8]) {
        self.sock.send_to(bytes, &self.to).unwrap();
    }

    /// The next datagram, if one arrives within `wait`.
    fn recv(&self, wait: Duration) -> Option<Vec<u8>> {
        self.sock.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 2048];
        match self.sock.recv_from(&mut buf) {
            Ok((n, _)) => Some(buf[..n].to_vec()),
            Err(_) => None,
        }
    }
}

fn decode(bytes: &[u8], key: &str) -> Envelope {
    protocol::decode(bytes, &Keys::new(key.as_bytes().to_vec(), None)).expect("a reply signed with the cluster's key")
}

fn quorum(s: &Value) -> (bool, bool, u64, u64) {
    let q = &s["quorum"];
    (q["quorate"] == json!(true), q["witness_vote"] == json!(true), q["votes"].as_u64().unwrap(), q["total"].as_u64().unwrap())
}

#[test]
fn a_witness_serves_two_clusters_and_answers_only_valid_queries() {
    let site = Site::new();
    let alpha = site.alpha();
    let mut witness = site.start_witness(&alpha);
    let client = Client::new(&site.witness_addr());

    // Cluster beta, as a test client: the witness answers once it is up (this also waits for it to listen).
    let mut beta_seq = 0;
    wait_until("the witness answers a query of cluster beta", Duration::from_secs(20), || {
        witness.assert_running();
        beta_seq += 1;
        client.send(&Client::query("beta", "b1", beta_seq, KEY_BETA));
        client.recv(Duration::from_millis(200)).is_some()
    });
    // drain replies to earlier tries that arrived late
    while client.recv(Duration::from_millis(200)).is_some() {}
    beta_seq += 1;
    let valid_beta = Client::query("beta", "b1", beta_seq, KEY_BETA);
    client.send(&valid_beta);
    let reply = decode(&client.recv(Duration::from_secs(5)).expect("a reply"), KEY_BETA);
    assert_eq!((reply.cluster.as_str(), reply.sender.as_str()), ("beta", "witness"));
    let Body::WitnessReply(r) = reply.body else { panic!("not a reply: {reply:?}") };
    assert_eq!((r.query_seq, r.node.as_str(), r.granted, r.holder.as_deref()), (beta_seq, "b1", true, Some("b1")));

    // Cluster alpha: two real daemons with [witness]; both count the witness's vote.
    let (mut n1, mut n2) = (alpha.start("n1"), alpha.start("n2"));
    let (s1, s2) = (n1.socket.clone(), n2.socket.clone());
    wait_until("n1 and n2 are quorate with the witness's vote (3 of 3)", Duration::from_secs(20), || {
        n1.assert_running();
        n2.assert_running();
        quorum(&status(&s1)) == (true, true, 3, 3) && quorum(&status(&s2)) == (true, true, 3, 3)
    });
    println!("--- n2 quorum with the witness ---\n{:#}", status(&s2)["quorum"]);
    let alpha_holder = witness
        .log_lines()
        .into_iter()
        .find(|l| l["fields"]["message"] == json!("witness vote holder changed") && l["fields"]["cluster"] == json!("alpha"))
        .expect("the witness logs who holds alpha's vote");
    let holder = alpha_holder["fields"]["node"].as_str().unwrap().to_string();
    assert!(holder == "n1" || holder == "n2", "{alpha_holder}");

    // Hostile queries get no reply: forged (wrong key), beta claimed with alpha's key, alpha claimed with
    // beta's key, a replay of the valid beta query, an unknown cluster, garbage.
    let forged_key = "0000000000000000000000000000000000000000000000000000000000000000";
    client.send(&Client::query("alpha", "n1", 1_000_000, forged_key));
    client.send(&Client::query("beta", "b1", beta_seq + 1, KEY_ALPHA));
    client.send(&Client::query("alpha", "n1", 1_000_001, KEY_BETA));
    client.send(&valid_beta);
    client.send(&Client::query("gamma", "g1", 1, KEY_ALPHA));
    client.send(b"FOD\x01 not a datagram at all, just bytes that go on long enough to pass the length check");
    assert!(client.recv(Duration::from_millis(500)).is_none(), "a hostile query was answered");
    // ...and the witness still answers a valid one, with that query's seq: nothing was answered in between
    beta_seq += 2;
    client.send(&Client::query("beta", "b1", beta_seq, KEY_BETA));
    let reply = decode(&client.recv(Duration::from_secs(5)).expect("a reply to the valid query"), KEY_BETA);
    let Body::WitnessReply(r) = reply.body else { panic!("not a reply") };
    assert_eq!(r.query_seq, beta_seq);
    assert!(client.recv(Duration::from_millis(200)).is_none(), "only one reply");

    // The node that loses its peer stays quorate with the witness: 2 of 3 votes.
    n1.kill();
    wait_until("n2 sees n1 dead and stays quorate with the witness (2 of 3)", Duration::from_secs(20), || {
        n2.assert_running();
        let s = status(&s2);
        let n1_dead = s["peers"].as_array().unwrap().iter().any(|p| p["node"] == json!("n1") && p["alive"] == json!(false));
        n1_dead && quorum(&s) == (true, true, 2, 3)
    });
    println!("--- n2 quorum alone with the witness ---\n{:#}", status(&s2)["quorum"]);
    let last_alpha_holder = witness
        .log_lines()
        .into_iter()
        .rev()
        .find(|l| l["fields"]["message"] == json!("witness vote holder changed") && l["fields"]["cluster"] == json!("alpha"))
        .unwrap();
    assert_eq!(last_alpha_holder["fields"]["node"], json!("n2"), "{last_alpha_holder}");
    witness.assert_running();
    let before = n2.events("witness_lost").len();

    // The witness dies: n2 says so once (`witness_lost`, naming the address) and loses quorum (1 of 3 votes).
    witness.kill();
    wait_until("n2 reports witness_lost and has 1 of 3 votes", Duration::from_secs(20), || {
        n2.assert_running();
        n2.events("witness_lost").len() > before && quorum(&status(&s2)) == (false, false, 1, 3)
    });
    std::thread::sleep(Duration::from_millis(4 * DEAD_AFTER_MS));
    let lost = n2.event_details("witness_lost");
    println!("--- n2 after the witness died ---\n{lost:?}");
    assert_eq!(lost.len(), before + 1, "reported once while the witness stays silent: {lost:?}");
    let (_, lost) = lost.last().unwrap();
    assert_eq!(lost["address"], json!(site.witness_addr()));
    assert!(lost["silent_ms"].as_u64().unwrap() >= DEAD_AFTER_MS, "{lost}");
    let line = n2.events("witness_lost").pop().unwrap();
    assert!(line["fields"]["summary"].as_str().unwrap().contains("takes nothing over"), "{line}");
}
