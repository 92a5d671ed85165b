//! `fstype` in `[[target]]`: `"lustre"` (default) or `"zfs"` (a plain ZFS dataset), validated with the
//! Lustre-only keys it excludes.

use failoverd::config::{Config, Fstype, TargetKind};

fn example() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/two-node-oss.toml")).unwrap()
}

/// The example with its first target's `kind = "zfs"` line followed by `extra`.
fn with_first_target(extra: &str) -> String {
    example().replacen(
        "name = \"lustre-OST0000\"\nkind = \"zfs\"\n",
        &format!("name = \"lustre-OST0000\"\nkind = \"zfs\"\n{extra}\n"),
        1,
    )
}

#[test]
fn default_is_lustre() {
    let c = Config::from_toml_str(&example()).unwrap();
    assert!(c.targets.iter().all(|t| t.kind.fstype() == Fstype::Lustre));
    assert!(matches!(c.targets[0].kind, TargetKind::Zfs { .. }));
}

#[test]
fn fstype_zfs_makes_a_dataset_target() {
    let text = with_first_target("fstype = \"zfs\"");
    assert!(text.contains("fstype = \"zfs\""));
    let c = Config::from_toml_str(&text).unwrap();
    let t = &c.targets[0];
    assert_eq!(t.kind, TargetKind::ZfsDataset { pool: "ost0pool".into(), dataset: "ost0pool/ost0".into() });
    assert_eq!(t.kind.fstype(), Fstype::Zfs);
    assert_eq!(c.targets[1].kind.fstype(), Fstype::Lustre, "the other target is untouched");
    let c = Config::from_toml_str(&with_first_target("fstype = \"lustre\"")).unwrap();
    assert!(matches!(c.targets[0].kind, TargetKind::Zfs { .. }));
}

#[test]
fn fstype_errors_name_their_key() {
    let bad = Config::from_toml_str(&with_first_target("fstype = \"ext4\"")).unwrap_err();
    assert!(bad.has_key("target[0].fstype"), "{bad}");
    let bad = Config::from_toml_str(&with_first_target("fstype = \"zfs\"\nlctl_device = \"OST0\"")).unwrap_err();
    let e = bad.get("target[0].lctl_device").expect("lctl_device refused");
    assert!(e.to_string().contains("fstype"), "{e}");
    let bad =
        Config::from_toml_str(&with_first_target("fstype = \"zfs\"\nhealth_nids = [\"10.0.0.1@tcp\"]")).unwrap_err();
    assert!(bad.has_key("target[0].health_nids"), "{bad}");
    let ldiskfs = example().replacen(
        "kind = \"zfs\"\npool = \"ost0pool\"\ndataset = \"ost0\"                          # a name without \"/\" is below the pool: ost0pool/ost0\n",
        "kind = \"ldiskfs\"\ndevice = \"/dev/mapper/ost0\"\nfstype = \"zfs\"\n",
        1,
    );
    assert!(ldiskfs.contains("fstype = \"zfs\""));
    let bad = Config::from_toml_str(&ldiskfs).unwrap_err();
    assert!(bad.has_key("target[0].fstype"), "{bad}");
}
