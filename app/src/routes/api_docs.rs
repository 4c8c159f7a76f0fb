//! The API page: every REST endpoint with its inputs and answers, and a
//! request ready to run in curl, Python and JavaScript, filled with the
//! address the visitor reached this server at (as Gradio's "Use via API"
//! page does). The OpenAPI document itself stays at `/api/openapi.json`.

use leptos::prelude::*;
use leptos_meta::Title;
use starcast_api::{ApiEndpoint, ApiInput, InputPlace};

use crate::api;
use crate::i18n::{locale, t, text_with};

/// The languages a snippet is shown in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    Curl,
    Python,
    JavaScript,
}

impl Client {
    const ALL: [Client; 3] = [Client::Curl, Client::Python, Client::JavaScript];

    fn label(self) -> &'static str {
        match self {
            Client::Curl => "curl",
            Client::Python => "Python",
            Client::JavaScript => "JavaScript",
        }
    }
}

#[component]
pub fn ApiDocsPage() -> impl IntoView {
    let reference = Resource::new(|| (), |_| api::describe_api());
    let client = RwSignal::new(Client::Curl);
    view! {
        <Title text=t("api-title") />
        <section class="intro">
            <h1>{t("api-heading")}</h1>
            <p>{t("api-intro")} " " <a href="/api/openapi.json">"/api/openapi.json"</a>"."</p>
            <div class="client-switch" role="group" aria-label=t("api-snippet-language")>
                {Client::ALL
                    .into_iter()
                    .map(|c| {
                        view! {
                            <button
                                type="button"
                                aria-pressed=move || (client.get() == c).to_string()
                                on:click=move |_| client.set(c)
                            >
                                {c.label()}
                            </button>
                        }
                    })
                    .collect::<Vec<_>>()}
            </div>
        </section>
        <Suspense fallback=|| view! { <p class="muted">{t("loading")}</p> }>
            {move || Suspend::new(async move {
                match reference.await {
                    Err(e) => view! { <p class="error" role="alert">{move || text_with(locale().get(), "api-unavailable", &[("reason", e.to_string().into())])}</p> }.into_any(),
                    Ok(reference) => {
                        let origin = reference.origin;
                        reference
                            .endpoints
                            .into_iter()
                            .map(|endpoint| view! { <Endpoint endpoint origin=origin.clone() client /> })
                            .collect::<Vec<_>>()
                            .into_any()
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
fn Endpoint(endpoint: ApiEndpoint, origin: String, client: RwSignal<Client>) -> impl IntoView {
    let snippets: Vec<(Client, String)> = Client::ALL
        .into_iter()
        .map(|c| (c, snippet(c, &endpoint, &origin)))
        .collect();
    let code = move || {
        let chosen = client.get();
        snippets
            .iter()
            .find(|(c, _)| *c == chosen)
            .map(|(_, code)| code.clone())
            .unwrap_or_default()
    };
    let id = endpoint
        .path
        .trim_start_matches('/')
        .replace(['/', '{', '}'], "-");
    view! {
        <section class="card endpoint" id=format!("{}-{id}", endpoint.method.to_lowercase())>
            <h2>
                <span class="method">{endpoint.method.clone()}</span>
                " "
                <code>{endpoint.path.clone()}</code>
                {endpoint.admin.then(|| view! { " " <span class="badge">{t("api-admin")}</span> })}
            </h2>
            <p>{endpoint.summary.clone()}</p>
            {(!endpoint.description.is_empty()).then(|| view! { <p class="muted">{endpoint.description.clone()}</p> })}
            {(!endpoint.inputs.is_empty()).then(|| view! { <Inputs inputs=endpoint.inputs.clone() /> })}
            <pre class="snippet"><code>{code}</code></pre>
            <details>
                <summary>{t("api-answers")}</summary>
                <ul>
                    {endpoint
                        .responses
                        .iter()
                        .map(|(status, what)| view! { <li><code>{*status}</code> " " {what.clone()}</li> })
                        .collect::<Vec<_>>()}
                </ul>
            </details>
        </section>
    }
}

#[component]
fn Inputs(inputs: Vec<ApiInput>) -> impl IntoView {
    view! {
        <table class="inputs">
            <thead>
                <tr><th>{t("api-input")}</th><th>{t("api-input-where")}</th><th>{t("api-input-what")}</th></tr>
            </thead>
            <tbody>
                {inputs
                    .into_iter()
                    .map(|input| {
                        let place = match input.place {
                            InputPlace::Query => "api-place-query",
                            InputPlace::Json => "api-place-json",
                            InputPlace::FormText => "api-place-form",
                            InputPlace::FormFile => "api-place-file",
                        };
                        view! {
                            <tr>
                                <td>
                                    <code>{input.name}</code>
                                    {input.required.then(|| view! { " " <span class="badge">{t("api-required")}</span> })}
                                </td>
                                <td>{t(place)}</td>
                                <td>{input.description}</td>
                            </tr>
                        }
                    })
                    .collect::<Vec<_>>()}
            </tbody>
        </table>
    }
}

/// The inputs a snippet sends: the required ones, and the optional ones
/// the document gives an example for.
fn sent(endpoint: &ApiEndpoint, place: InputPlace) -> Vec<(&str, String)> {
    endpoint
        .inputs
        .iter()
        .filter(|i| i.place == place && (i.required || i.example.is_some()))
        .map(|i| {
            let fallback = match place {
                InputPlace::FormFile => "file.bin",
                _ => "...",
            };
            (
                i.name.as_str(),
                i.example.clone().unwrap_or_else(|| fallback.into()),
            )
        })
        .collect()
}

/// The URL with the query inputs filled in.
fn url(endpoint: &ApiEndpoint, origin: &str) -> String {
    let query: Vec<String> = sent(endpoint, InputPlace::Query)
        .into_iter()
        .map(|(name, value)| format!("{name}={}", percent_encoded(&value)))
        .collect();
    let mut url = format!("{origin}{}", endpoint.path);
    if !query.is_empty() {
        url = format!("{url}?{}", query.join("&"));
    }
    url
}

/// Percent-encodes what a query value may not hold as is.
fn percent_encoded(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The JSON body a snippet sends, one field a line.
fn json_body(endpoint: &ApiEndpoint, indent: &str) -> Option<String> {
    let fields = sent(endpoint, InputPlace::Json);
    (!fields.is_empty()).then(|| {
        let lines: Vec<String> = fields
            .into_iter()
            .map(|(name, value)| format!("{indent}  {}: {}", quoted(name), json_value(&value)))
            .collect();
        format!("{{\n{}\n{indent}}}", lines.join(",\n"))
    })
}

/// A JSON example as it stands in code: numbers and objects as they are,
/// text quoted.
fn json_value(value: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(value) {
        Ok(parsed) if !parsed.is_string() => value.to_string(),
        _ => quoted(value),
    }
}

fn quoted(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// `text` inside single quotes for a POSIX shell.
fn shell_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The request for `endpoint` in `client`'s words, calling `origin`.
pub fn snippet(client: Client, endpoint: &ApiEndpoint, origin: &str) -> String {
    match client {
        Client::Curl => curl(endpoint, origin),
        Client::Python => python(endpoint, origin),
        Client::JavaScript => javascript(endpoint, origin),
    }
}

fn curl(endpoint: &ApiEndpoint, origin: &str) -> String {
    // -N prints each event as it comes.
    let unbuffered = if endpoint.streams { "-N " } else { "" };
    let mut lines = vec![format!(
        "curl {unbuffered}{}",
        shell_quoted(&url(endpoint, origin))
    )];
    if endpoint.admin {
        lines.push(r#"-H "Authorization: Bearer $STARCAST_ADMIN_TOKEN""#.into());
    }
    if let Some(body) = json_body(endpoint, "") {
        lines.push("-H 'Content-Type: application/json'".into());
        lines.push(format!("-d {}", shell_quoted(&body)));
    }
    for (name, value) in sent(endpoint, InputPlace::FormText) {
        lines.push(format!("-F {}", shell_quoted(&format!("{name}={value}"))));
    }
    for (name, file) in sent(endpoint, InputPlace::FormFile) {
        lines.push(format!("-F {}", shell_quoted(&format!("{name}=@{file}"))));
    }
    if endpoint.method == "POST" && lines.len() == 1 + usize::from(endpoint.admin) {
        lines.push("-X POST".into());
    }
    lines.join(" \\\n  ")
}

fn python(endpoint: &ApiEndpoint, origin: &str) -> String {
    let mut arguments = vec![quoted(&url(endpoint, origin))];
    if endpoint.admin {
        arguments.push(
            r#"headers={"Authorization": "Bearer " + os.environ["STARCAST_ADMIN_TOKEN"]}"#.into(),
        );
    }
    if let Some(body) = json_body(endpoint, "    ") {
        arguments.push(format!("json={body}"));
    }
    let texts = python_dict(endpoint, InputPlace::FormText, quoted);
    arguments.extend(texts.map(|dict| format!("data={dict}")));
    let files = python_dict(endpoint, InputPlace::FormFile, |file| {
        format!("open({}, \"rb\")", quoted(file))
    });
    arguments.extend(files.map(|dict| format!("files={dict}")));
    if endpoint.streams {
        arguments.push("stream=True".into());
    }
    let imports = if endpoint.admin {
        "import os\n\nimport requests"
    } else {
        "import requests"
    };
    let call = format!(
        "response = requests.{}(\n    {},\n)",
        endpoint.method.to_lowercase(),
        arguments.join(",\n    ")
    );
    let answer = if endpoint.streams {
        "for line in response.iter_lines(decode_unicode=True):\n    print(line)"
    } else {
        "print(response.status_code, response.json())"
    };
    format!("{imports}\n\n{call}\n{answer}")
}

/// The inputs `endpoint` sends in `place` as a Python dict literal, each
/// value written by `value`; `None` when there are none.
fn python_dict(
    endpoint: &ApiEndpoint,
    place: InputPlace,
    value: impl Fn(&str) -> String,
) -> Option<String> {
    let fields: Vec<String> = sent(endpoint, place)
        .into_iter()
        .map(|(name, example)| format!("{}: {}", quoted(name), value(&example)))
        .collect();
    (!fields.is_empty()).then(|| format!("{{{}}}", fields.join(", ")))
}

fn javascript(endpoint: &ApiEndpoint, origin: &str) -> String {
    let address = quoted(&url(endpoint, origin));
    if endpoint.streams {
        return format!(
            "const events = new EventSource({address});\n\
             events.addEventListener(\"token\", (e) => console.log(JSON.parse(e.data)));\n\
             events.addEventListener(\"done\", (e) => {{ console.log(JSON.parse(e.data)); events.close(); }});\n\
             events.addEventListener(\"failure\", (e) => {{ console.error(e.data); events.close(); }});"
        );
    }
    let mut lines = Vec::new();
    let mut options = vec![format!("method: {}", quoted(&endpoint.method))];
    if endpoint.admin {
        lines.push("const token = \"...\"; // the admin token".to_string());
    }
    let texts = sent(endpoint, InputPlace::FormText);
    let files = sent(endpoint, InputPlace::FormFile);
    let mut headers = Vec::new();
    if endpoint.admin {
        headers.push("Authorization: `Bearer ${token}`".to_string());
    }
    if let Some(body) = json_body(endpoint, "  ") {
        headers.push("\"Content-Type\": \"application/json\"".into());
        options.push(format!("body: JSON.stringify({body})"));
    } else if !texts.is_empty() || !files.is_empty() {
        lines.push("const form = new FormData();".into());
        for (name, value) in texts {
            lines.push(format!(
                "form.append({}, {});",
                quoted(name),
                quoted(&value)
            ));
        }
        for (name, file) in files {
            lines.push(format!(
                "form.append({}, fileInput.files[0]); // {file}, from an <input type=\"file\">",
                quoted(name)
            ));
        }
        options.push("body: form".into());
    }
    if !headers.is_empty() {
        options.push(format!("headers: {{ {} }}", headers.join(", ")));
    }
    lines.push(format!(
        "const response = await fetch({address}, {{\n  {},\n}});",
        options.join(",\n  ")
    ));
    lines.push("console.log(response.status, await response.json());".into());
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, place: InputPlace, required: bool, example: Option<&str>) -> ApiInput {
        ApiInput {
            name: name.into(),
            place,
            required,
            description: String::new(),
            example: example.map(Into::into),
        }
    }

    fn endpoint(method: &str, path: &str, inputs: Vec<ApiInput>) -> ApiEndpoint {
        ApiEndpoint {
            method: method.into(),
            path: path.into(),
            summary: String::new(),
            description: String::new(),
            admin: false,
            streams: false,
            inputs,
            responses: Vec::new(),
        }
    }

    const ORIGIN: &str = "https://someone-starcast.hf.space";

    #[test]
    fn a_photo_upload_sends_its_file_in_every_client() {
        let predict = endpoint(
            "POST",
            "/api/actors/predict",
            vec![input(
                "image",
                InputPlace::FormFile,
                true,
                Some("photo.jpg"),
            )],
        );
        assert_eq!(
            snippet(Client::Curl, &predict, ORIGIN),
            "curl 'https://someone-starcast.hf.space/api/actors/predict' \\\n  -F 'image=@photo.jpg'"
        );
        let python = snippet(Client::Python, &predict, ORIGIN);
        assert!(
            python.contains(r#"files={"image": open("photo.jpg", "rb")}"#),
            "{python}"
        );
        assert!(python.contains("requests.post("), "{python}");
        let js = snippet(Client::JavaScript, &predict, ORIGIN);
        assert!(
            js.contains(r#"form.append("image", fileInput.files[0]);"#),
            "{js}"
        );
        assert!(js.contains("body: form"), "{js}");
    }

    #[test]
    fn a_json_body_sends_the_required_fields_and_the_examples() {
        let write = endpoint(
            "POST",
            "/api/horoscope",
            vec![
                input("sign", InputPlace::Json, true, Some("leo")),
                input("seed", InputPlace::Json, false, Some("7")),
                input("lang", InputPlace::Json, false, None),
            ],
        );
        let curl = snippet(Client::Curl, &write, ORIGIN);
        assert!(
            curl.contains("-H 'Content-Type: application/json'"),
            "{curl}"
        );
        assert!(curl.contains(r#""sign": "leo""#), "{curl}");
        assert!(curl.contains(r#""seed": 7"#), "{curl}");
        assert!(!curl.contains("lang"), "{curl}");
        let python = snippet(Client::Python, &write, ORIGIN);
        assert!(python.contains(r#"json={"#), "{python}");
        let js = snippet(Client::JavaScript, &write, ORIGIN);
        assert!(js.contains("body: JSON.stringify({"), "{js}");
    }

    #[test]
    fn a_stream_is_read_as_events_and_its_query_is_encoded() {
        let mut stream = endpoint(
            "GET",
            "/api/horoscope/stream",
            vec![input("sign", InputPlace::Query, true, Some("дева"))],
        );
        stream.streams = true;
        let curl = snippet(Client::Curl, &stream, ORIGIN);
        assert!(
            curl.starts_with("curl -N 'https://someone-starcast.hf.space/api/horoscope/stream?sign=%D0%B4%D0%B5%D0%B2%D0%B0'"),
            "{curl}"
        );
        assert!(snippet(Client::JavaScript, &stream, ORIGIN).contains("new EventSource("));
        assert!(snippet(Client::Python, &stream, ORIGIN).contains("stream=True"));
    }

    #[test]
    fn admin_calls_carry_the_token_and_quotes_survive_the_shell() {
        let mut upload = endpoint(
            "POST",
            "/api/admin/actors/model",
            vec![
                input("weights", InputPlace::FormFile, true, Some("model.pth")),
                input("labels", InputPlace::FormText, false, Some("Bea's,Cleo")),
            ],
        );
        upload.admin = true;
        let curl = snippet(Client::Curl, &upload, ORIGIN);
        assert!(curl.contains("Bearer $STARCAST_ADMIN_TOKEN"), "{curl}");
        assert!(curl.contains(r"-F 'labels=Bea'\''s,Cleo'"), "{curl}");
        assert!(
            snippet(Client::Python, &upload, ORIGIN)
                .contains("os.environ[\"STARCAST_ADMIN_TOKEN\"]")
        );
        let plain_post = endpoint("POST", "/api/admin/pipeline/runs", Vec::new());
        assert!(snippet(Client::Curl, &plain_post, ORIGIN).ends_with("-X POST"));
    }
}
