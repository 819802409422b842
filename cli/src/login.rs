//! `sextant login`: writes a named profile (URLs, key, default client) to
//! the profile file, mode 0600. The key comes from `--key`/`SEXTANT_KEY`,
//! else from the terminal without echo (or a line of stdin). It is checked
//! against `GET /v1/whoami` first unless `--no-verify`, and a client key's
//! client becomes the profile's default client.

use std::path::Path;

use crate::api::Api;
use crate::args::Login;
use crate::commands::read_secret_line;
use crate::config::{Given, Key, ProfileFile, Settings, DEFAULT_PROFILE};
use crate::error::Result;
use crate::output::{cell, Out};

pub async fn run(
    out: &Out,
    given: &Given,
    mut file: ProfileFile,
    path: &Path,
    login: Login,
) -> Result<()> {
    let name = login
        .name
        .clone()
        .or_else(|| given.profile.clone())
        .unwrap_or_else(|| DEFAULT_PROFILE.to_owned());
    let mut profile = file.profiles.get(&name).cloned().unwrap_or_default();
    let set = |slot: &mut Option<String>, value: &Option<String>| {
        if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
            *slot = Some(v.trim_end_matches('/').to_owned());
        }
    };
    set(&mut profile.command_url, &given.command_url);
    set(&mut profile.query_url, &given.query_url);
    set(&mut profile.nats_url, &given.nats_url);
    set(&mut profile.stream, &given.stream);
    set(&mut profile.client, &given.client);
    let key = match given.key.as_ref().filter(|k| !k.is_empty()) {
        Some(k) => Key::new(k.clone()),
        None => match &profile.key {
            Some(k) => k.clone(),
            None => Key::new(read_secret_line("API key: ")?),
        },
    };
    profile.key = Some(key.clone());

    let mut identity = serde_json::Value::Null;
    if !login.no_verify {
        let mut check = ProfileFile::default();
        check.profiles.insert(name.clone(), profile.clone());
        let settings = Settings::resolve(
            &Given {
                profile: Some(name.clone()),
                ..Given::default()
            },
            &check,
        )?;
        let api = Api::new(&settings, None)?;
        identity = api.query("/v1/whoami", &[]).await?.body;
        if profile.client.is_none() {
            if let Some(client) = identity["client_id"].as_str() {
                profile.client = Some(client.to_owned());
            }
        }
    }

    file.profiles.insert(name.clone(), profile.clone());
    if login.make_default || file.default_profile.is_none() {
        file.default_profile = Some(name.clone());
    }
    file.save(path)?;
    out.record(
        &serde_json::json!({
            "profile": name,
            "path": path.display().to_string(),
            "identity": identity,
        }),
        vec![
            ("profile", name.clone()),
            ("file", path.display().to_string()),
            ("role", cell(&identity["role"])),
            (
                "client",
                profile.client.clone().unwrap_or_else(|| "-".into()),
            ),
        ],
    )
}
