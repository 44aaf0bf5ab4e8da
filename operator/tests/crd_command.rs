//! `crds/` is generated from the Rust types; this fails when it drifts.

use std::process::Command;

#[test]
fn crds_folder_matches_the_types() {
    let out = Command::new(env!("CARGO_BIN_EXE_gossamer-operator"))
        .arg("crd")
        .output()
        .expect("run gossamer-operator crd");
    assert!(
        out.status.success(),
        "gossamer-operator crd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).expect("YAML is UTF-8");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/gossamer.dev.yaml");
    let committed = std::fs::read_to_string(path).expect("read crds/gossamer.dev.yaml");
    assert!(
        generated == committed,
        "crds/gossamer.dev.yaml differs from the Rust types in operator/api; regenerate it with\n  cargo run -p gossamer-operator -- crd > crds/gossamer.dev.yaml"
    );
}

#[test]
fn crds_have_the_shape_users_rely_on() {
    let crds = gossamer_operator_api::crds();
    let names: Vec<_> = crds
        .iter()
        .map(|c| c.metadata.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        [
            "gossipnetworks.gossamer.dev",
            "gossipkeys.gossamer.dev",
            "bootstrappeers.gossamer.dev"
        ]
    );
    for crd in &crds {
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["gossamer".to_string()][..])
        );
        assert!(crd
            .spec
            .names
            .short_names
            .as_ref()
            .is_some_and(|s| !s.is_empty()));
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{} has a status subresource",
            crd.spec.names.kind
        );
        let cols: Vec<_> = v
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert!(cols.contains(&"Age"), "{cols:?}");
    }
}
