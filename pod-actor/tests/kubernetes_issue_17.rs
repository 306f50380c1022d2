//! Kubernetes export (issue 17): golden manifests for a table of configs
//! (every probe kind, every restart type, ports, env, a container), each
//! read back into the typed structs; the runner's config reads back as the
//! pod's; what cannot be exported is an error that says why.
//!
//! `UPDATE_GOLDEN=1 cargo test -p pod-actor --features kubernetes --test
//! kubernetes_issue_17` rewrites the golden files after a deliberate change.
#![cfg(feature = "kubernetes")]

use std::path::{Path, PathBuf};

use pod_actor::deployment::DeploymentsConfig;
use pod_actor::kubernetes::{
    export_deployments, export_pod, parse_yaml, Export, ExportError, ExportOptions, Manifest,
};
use pod_actor::{ConfigFormat, PodConfig};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kubernetes")
}

fn options() -> ExportOptions {
    ExportOptions {
        image: Some("registry.example/pods/app:1.0".into()),
        origin: "tests/kubernetes".into(),
        ..ExportOptions::default()
    }
}

/// The export of `config` matches `golden`, and reads back as the same
/// typed objects.
fn check_golden(export: &Export, golden: &str) {
    let yaml = export.to_yaml();
    let path = dir().join(golden);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &yaml).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(
        yaml, expected,
        "{golden} differs (UPDATE_GOLDEN=1 rewrites it)"
    );
    let parsed = parse_yaml(&yaml).unwrap();
    assert_eq!(
        parsed, export.manifests,
        "{golden} does not read back as written"
    );
}

#[test]
fn process_pods_of_every_probe_and_restart_kind() {
    let config = DeploymentsConfig::from_file(dir().join("deployments.toml")).unwrap();
    let export = export_deployments(&config, &options()).unwrap();
    check_golden(&export, "deployments.yaml");

    let kinds: Vec<(&str, &str)> = export
        .manifests
        .iter()
        .map(|m| (m.kind(), m.name()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("ConfigMap", "encoder-pod"),
            ("Deployment", "encoder"),
            ("ConfigMap", "gateway-pod"),
            ("Deployment", "gateway"),
            ("ConfigMap", "head-api-pod"),
            ("Deployment", "head-api"),
            ("ConfigMap", "indexer-pod"),
            ("Job", "indexer"),
            ("ConfigMap", "migrate-pod"),
            ("Job", "migrate"),
        ]
    );
    // Restarts, jitter and intensity are the runner's, so not warned
    // about; a renamed pod and a placement are.
    assert_eq!(export.warnings.len(), 2, "{:#?}", export.warnings);
    assert!(
        export.warnings[0].contains("`head-api`"),
        "{:?}",
        export.warnings
    );
    assert!(
        export.warnings[1].contains("placement"),
        "{:?}",
        export.warnings
    );
}

#[test]
fn the_runners_config_reads_back_as_the_pods() {
    let config = DeploymentsConfig::from_file(dir().join("deployments.toml")).unwrap();
    let export = export_deployments(&config, &options()).unwrap();
    let Manifest::ConfigMap(map) = &export.manifests[0] else {
        panic!("a ConfigMap first");
    };
    let json = &map.data.as_ref().unwrap()["pod.json"];
    let read = PodConfig::from_str(json, ConfigFormat::Json, "pod.json").unwrap();
    let mut expected = config.deployments[0].pod.clone();
    expected.name = "encoder".into();
    assert_eq!(read, expected);
}

#[test]
fn a_container_pod_with_ports_limits_and_what_has_no_equivalent() {
    let config = PodConfig::from_file(dir().join("container.toml")).unwrap();
    let export = export_pod(&config, 2, &options()).unwrap();
    check_golden(&export, "container.yaml");
    let kinds: Vec<&str> = export.manifests.iter().map(Manifest::kind).collect();
    assert_eq!(kinds, ["Deployment", "Service"]);
    let warned = export.warnings.join("\n");
    for said in ["runtime.volumes", "SIGINT", "the kubelet's"] {
        assert!(warned.contains(said), "{said} not in {warned}");
    }
    assert!(export.to_yaml().starts_with("# warning: pod `ranker`"));
}

#[test]
fn readiness_kubernetes_cannot_see_is_a_warning_not_a_silent_drop() {
    let config = PodConfig::from_file(dir().join("container-notify.toml")).unwrap();
    let export = export_pod(&config, 1, &options()).unwrap();
    check_golden(&export, "container-notify.yaml");
    assert!(
        export
            .warnings
            .iter()
            .any(|w| w.contains("readiness by notify")),
        "{:?}",
        export.warnings
    );
}

#[test]
fn what_cannot_be_exported_says_why() {
    let load = |toml: &str| {
        PodConfig::from_str_with_env(toml, ConfigFormat::Toml, "test", &Default::default()).unwrap()
    };
    let in_process = load("name = \"a\"\nruntime = { kind = \"in-process\", name = \"x\" }");
    let err = export_pod(&in_process, 1, &options()).unwrap_err();
    assert_eq!(err, ExportError::InProcess { pod: "a".into() });
    assert!(err.to_string().contains("no program to run"), "{err}");

    let rootfs = load("name = \"r\"\nruntime = { kind = \"container\", rootfs = \"/srv/r\" }");
    let err = export_pod(&rootfs, 1, &options()).unwrap_err();
    assert_eq!(err, ExportError::Rootfs { pod: "r".into() });

    let process = load("name = \"p\"\nruntime = { kind = \"process\", command = \"/bin/p\" }");
    let err = export_pod(&process, 1, &ExportOptions::default()).unwrap_err();
    assert_eq!(err, ExportError::NoImage { pod: "p".into() });
    assert!(err.to_string().contains("--image"), "{err}");
}

#[test]
fn clashing_names_a_probe_on_podruns_port_and_a_bad_namespace_are_refused() {
    let deployments = |names: [&str; 2]| {
        let text = names
            .iter()
            .map(|name| {
                format!(
                    "[[deployment]]\nname = \"{name}\"\nreplicas = 1\n[deployment.pod.runtime]\n\
                     kind = \"process\"\ncommand = \"/bin/p\"\n"
                )
            })
            .collect::<String>();
        DeploymentsConfig::from_str(&text, ConfigFormat::Toml, "test").unwrap()
    };
    let err = export_deployments(&deployments(["Encoder_0", "encoder-0"]), &options()).unwrap_err();
    assert_eq!(
        err,
        ExportError::NameClash {
            first: "Encoder_0".into(),
            second: "encoder-0".into(),
            name: "encoder-0".into()
        }
    );

    let probe_on_8086 = PodConfig::from_str_with_env(
        "name = \"p\"\n[runtime]\nkind = \"process\"\ncommand = \"/bin/p\"\n\
         probe = { kind = \"tcp\", address = \"127.0.0.1:8086\" }\n",
        ConfigFormat::Toml,
        "test",
        &Default::default(),
    )
    .unwrap();
    let err = export_pod(&probe_on_8086, 1, &options()).unwrap_err();
    assert_eq!(
        err,
        ExportError::RunnerPort {
            pod: "p".into(),
            port: 8086
        }
    );

    let mut bad_namespace = options();
    bad_namespace.namespace = Some("Prod_1".into());
    let err = export_deployments(&deployments(["a", "b"]), &bad_namespace).unwrap_err();
    assert!(matches!(err, ExportError::Namespace { .. }), "{err}");
}

#[test]
fn yaml_that_is_not_a_manifest_is_refused() {
    assert!(parse_yaml("kind: Secret\nmetadata: {name: x}\n").is_err());
    assert!(parse_yaml("kind: Deployment\nspec: 3\n").is_err());
    assert!(parse_yaml(": : :").is_err());
}
