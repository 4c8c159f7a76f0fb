//! The Spaces deployment, checked by reading on every test run: the
//! Dockerfile is held to the README's front matter and to what Spaces
//! requires (its port, UID 1000, a writable HOME and HF_HOME). Building
//! and running the image takes podman and half an hour:
//! `scripts/build-image.sh` and `scripts/check-image.sh` do that.

use std::path::Path;

fn repo_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `key: value` pairs of the README's YAML front matter.
fn front_matter() -> Vec<(String, String)> {
    let readme = repo_file("README.md");
    let mut lines = readme.lines();
    assert_eq!(
        lines.next(),
        Some("---"),
        "README.md must open with Spaces front matter"
    );
    lines
        .take_while(|l| *l != "---")
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

fn front(key: &str) -> String {
    front_matter()
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("README front matter has no '{key}'"))
}

/// The instructions of the Dockerfile's last stage, continuation lines joined.
fn runtime_stage() -> Vec<String> {
    let dockerfile = repo_file("Dockerfile").replace("\\\n", " ");
    let instructions: Vec<String> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    let from = instructions
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .unwrap();
    instructions[from..].to_vec()
}

/// Every `ENV` setting of the runtime stage, as one line.
fn runtime_env() -> String {
    runtime_stage()
        .into_iter()
        .filter(|l| l.starts_with("ENV "))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn the_front_matter_describes_a_docker_space() {
    assert_eq!(front("sdk"), "docker");
    assert!(!front("title").is_empty());
    assert!(!front("emoji").is_empty());
    assert_eq!(front("app_port"), "7860");
}

/// The items of the front matter's list `key`.
fn front_list(key: &str) -> Vec<String> {
    let readme = repo_file("README.md");
    readme
        .lines()
        .skip(1)
        .take_while(|l| *l != "---")
        .skip_while(|l| *l != format!("{key}:"))
        .skip(1)
        .map_while(|l| l.strip_prefix("  - "))
        .map(String::from)
        .collect()
}

#[test]
fn the_front_matter_says_what_the_hub_lists_a_space_by() {
    let description = front("short_description");
    // The Hub refuses a longer one.
    assert!(
        (1..=60).contains(&description.chars().count()),
        "{description}"
    );
    let tags = front_list("tags");
    for task in ["image-classification", "text-generation"] {
        assert!(tags.iter().any(|t| t == task), "{tags:?}");
    }
    // The served defaults are the Hub repos fetch-defaults.sh names as
    // their sources, written "(owner/name, licence)".
    let script = repo_file("scripts/fetch-defaults.sh");
    let sources: Vec<String> = script
        .split('(')
        .skip(1)
        .filter_map(|part| part.split_once(',').map(|(repo, _)| repo))
        .filter(|repo| repo.split('/').count() == 2 && !repo.contains(' '))
        .map(String::from)
        .collect();
    assert!(!sources.is_empty());
    assert_eq!(front_list("models"), sources);
}

#[test]
fn the_image_listens_where_the_space_expects() {
    let port = front("app_port");
    let stage = runtime_stage();
    assert!(stage.contains(&format!("EXPOSE {port}")), "{stage:#?}");
    let env = runtime_env();
    assert!(env.contains(&format!("PORT={port}")), "{env}");
    assert!(env.contains("STARCAST_HOST=0.0.0.0"), "{env}");
    assert!(
        stage.last().unwrap().contains("serve"),
        "the image must start the server: {stage:#?}"
    );
}

#[test]
fn the_image_runs_as_uid_1000_with_writable_home_and_hf_home() {
    let stage = runtime_stage();
    assert!(stage.contains(&"USER 1000".to_string()), "{stage:#?}");
    let env = runtime_env();
    assert!(env.contains("HOME=/home/user"), "{env}");
    assert!(
        env.contains("HF_HOME=/home/user/"),
        "HF_HOME must be under the writable HOME: {env}"
    );
    assert!(stage.iter().any(|l| l.contains("--uid 1000")), "{stage:#?}");
    let chown = stage
        .iter()
        .position(|l| l.contains("chown -R 1000:1000 /home/user"));
    let chown = chown.unwrap_or_else(|| panic!("HOME must belong to the app's user: {stage:#?}"));
    // A `chown -R` after the data is copied in would store it twice.
    let data = stage
        .iter()
        .position(|l| l.starts_with("COPY --from=assets --chown=1000:1000"))
        .unwrap_or_else(|| {
            panic!("the default data must be copied in owned by UID 1000: {stage:#?}")
        });
    assert!(chown < data, "{stage:#?}");
}

#[test]
fn the_build_is_multi_stage_with_cached_dependencies() {
    let dockerfile = repo_file("Dockerfile");
    let stages = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .count();
    assert!(stages >= 3, "{stages} stages");
    let cook = dockerfile
        .find("cargo chef cook")
        .expect("dependencies are cooked in their own layer");
    let sources = dockerfile.rfind("COPY . .").unwrap();
    assert!(
        cook < sources,
        "dependencies must build before the sources are copied"
    );
    assert!(
        dockerfile.contains("fetch-defaults.sh"),
        "default data is fetched at build time"
    );
}
