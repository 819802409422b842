//! A real browser for the console's tests: `chromedriver` on a free port
//! (one per [`Browser`], stopped with it), a headless Chromium session with
//! a fresh profile, and the console itself (`sextant_console::run` on port
//! 0) pointed at a running [`Running`]'s command and query APIs. Every
//! page a test looks at can be saved as `target/console/<test>-<page>.png`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Running;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a page may take to show what a test waits for.
const PATIENCE: Duration = Duration::from_secs(15);

/// The workspace root: this crate's manifest directory's parent.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .expect("the tests crate sits in the workspace")
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A console serving on port 0 against `app`'s APIs, stopped on drop.
pub struct Console {
    pub url: String,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Console {
    pub async fn start(app: &Running) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the console");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let settings = sextant_console::Settings::for_apis(&app.command_url, &app.query_url);
        let stop = CancellationToken::new();
        let until = stop.clone();
        let task = tokio::spawn(async move {
            let _ =
                sextant_console::run(listener, settings, async move { until.cancelled().await })
                    .await;
        });
        Self {
            url,
            stop,
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// `chromedriver` in a process group of its own, so that stopping it
/// stops the browsers it started too.
struct Driver {
    child: Child,
    url: String,
    profile: PathBuf,
}

impl Driver {
    fn start() -> Self {
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{CHROMEDRIVER} does not start ({e}): apt-get install chromium chromium-driver"
                )
            });
        let profile =
            std::env::temp_dir().join(format!("sextant-chromium-{}", uuid::Uuid::new_v4()));
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profile,
        }
    }

    /// Waits until the driver answers `/status` as ready.
    async fn ready(&self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + PATIENCE;
        loop {
            let status = http.get(format!("{}/status", self.url)).send().await;
            if let Ok(response) = status {
                let body: Value = response.json().await.unwrap_or(Value::Null);
                if body["value"]["ready"] == json!(true) {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver is not ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group (chromedriver made it, with its own id): the
        // driver and any browser it left running.
        let group = self.child.id();
        if group > 1 {
            let _ = Command::new("kill")
                .args(["-s", "TERM", "--", &format!("-{group}")])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A headless Chromium on a console, for one test.
pub struct Browser {
    pub client: Client,
    pub console: Console,
    test: String,
    driver: Driver,
}

impl Browser {
    /// Starts chromedriver, a browser and a console on `app`. `test` names
    /// the screenshots.
    pub async fn start(test: &str, app: &Running) -> Self {
        let console = Console::start(app).await;
        let driver = Driver::start();
        driver.ready().await;
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1280,1000".to_owned(),
            format!("--user-data-dir={}", driver.profile.display()),
        ];
        let capabilities = json!({
            "browserName": "chrome",
            // An alert a page might open stays open, for the test to find.
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("an object literal")
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .expect("a Chromium session");
        Self {
            client,
            console,
            test: test.to_owned(),
            driver,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.console.url)
    }

    pub async fn goto(&self, path: &str) {
        self.client.goto(&self.url(path)).await.expect("navigate");
    }

    /// The current address, without the origin.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("the current URL");
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Saves the page as `target/console/<test>-<page>.png`, then checks
    /// it with axe-core: every page a test looks at is also checked.
    pub async fn shot(&self, page: &str) {
        let dir = workspace_root().join("target").join("console");
        std::fs::create_dir_all(&dir).expect("target/console");
        let png = self.client.screenshot().await.expect("a screenshot");
        std::fs::write(dir.join(format!("{}-{page}.png", self.test)), png)
            .expect("write the screenshot");
        self.assert_accessible(page).await;
    }

    /// Runs axe-core on the page as it is and fails on any violation of
    /// impact `serious` or `critical`. The console serves axe as
    /// `/static/axe.min.js` and no page refers to it: the test adds it
    /// with a script element (the page's CSP allows scripts from the
    /// console itself).
    pub async fn assert_accessible(&self, page: &str) {
        let violations = self.accessibility_violations().await;
        assert_eq!(
            violations,
            json!([]),
            "{}-{page}: serious or critical accessibility violations",
            self.test
        );
    }

    /// axe-core's violations of impact `serious` or `critical` on the page
    /// as it is: rule id, impact, help and up to five elements each.
    pub async fn accessibility_violations(&self) -> Value {
        const RUN_AXE: &str = r#"
            const done = arguments[arguments.length - 1];
            function run() {
              window.axe.run(document, { resultTypes: ["violations"] }).then(function (r) {
                done(JSON.stringify(r.violations
                  .filter(function (v) { return v.impact === "serious" || v.impact === "critical"; })
                  .map(function (v) {
                    return { id: v.id, impact: v.impact, help: v.help,
                             nodes: v.nodes.slice(0, 5).map(function (n) { return n.target.join(" "); }) };
                  })));
              }).catch(function (e) { done("error: " + e); });
            }
            if (window.axe) { run(); } else {
              const script = document.createElement("script");
              script.src = "/static/axe.min.js";
              // Removed once loaded: the page's own scripts stay the
              // only script elements a test counts.
              script.onload = function () { script.remove(); run(); };
              script.onerror = function () { done("error: axe did not load"); };
              document.head.appendChild(script);
            }"#;
        let answer = self
            .client
            .execute_async(RUN_AXE, vec![])
            .await
            .expect("axe runs");
        let text = answer.as_str().unwrap_or("").to_owned();
        assert!(!text.starts_with("error"), "{}: {text}", self.test);
        serde_json::from_str(&text).expect("axe's answer")
    }

    /// Presses `key` as a person would (key down, key up) on whatever has
    /// the focus.
    pub async fn press(&self, key: char) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let keys = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        self.client
            .perform_actions(keys)
            .await
            .expect("a key press");
        let _ = self.client.release_actions().await;
    }

    /// The `id` of the element that has the focus.
    pub async fn focused_id(&self) -> String {
        self.client
            .execute(
                "return document.activeElement ? document.activeElement.id : '';",
                vec![],
            )
            .await
            .expect("the focused element")
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// The element `css` selects, waited for.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on {}: {e}", self.console.url))
    }

    /// Whether `css` selects anything now (no waiting).
    pub async fn has(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .expect("find")
            .is_empty()
    }

    pub async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .expect("find")
            .len()
    }

    /// The visible text of `css` (waited for).
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("text")
    }

    /// The page's text as the DOM holds it (`textContent` of the body).
    pub async fn dom_text(&self) -> String {
        self.client
            .execute("return document.body.textContent;", vec![])
            .await
            .expect("the body's text")
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.expect("click");
    }

    /// Clicks `css` and waits until the page shows `until`.
    pub async fn click_then(&self, css: &str, until: &str) {
        // The page is marked first: when the click navigates, `until` is
        // looked for on the next page, not found on this one just before
        // it goes (and then read as a stale element). A click that does
        // not navigate leaves the mark, and is given two seconds.
        let _ = self
            .client
            .execute("window.sextantBeforeClick = true;", vec![])
            .await;
        self.click(css).await;
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            match self
                .client
                .execute("return window.sextantBeforeClick === true;", vec![])
                .await
            {
                Ok(Value::Bool(true)) => tokio::time::sleep(Duration::from_millis(50)).await,
                _ => break,
            }
        }
        self.find(until).await;
    }

    /// Signs in with `key` and waits for the signed-in layout.
    pub async fn sign_in(&self, key: &str) {
        self.goto("/sign-in").await;
        self.fill("#key", key).await;
        self.click_then("#sign-in", "#sign-out").await;
    }

    /// No alert, confirm or prompt is open.
    pub async fn no_dialog(&self) {
        match self.client.get_alert_text().await {
            Err(e) if e.is_no_such_alert() => {}
            Ok(text) => panic!("a dialog opened: {text:?}"),
            Err(e) => panic!("could not ask for a dialog: {e}"),
        }
    }

    pub async fn cookie(&self, name: &str) -> String {
        self.client
            .get_named_cookie(name)
            .await
            .expect("the cookie")
            .value()
            .to_owned()
    }

    pub async fn close(self) {
        let Self {
            client,
            console,
            driver,
            ..
        } = self;
        let _ = client.close().await;
        console.stop().await;
        drop(driver);
    }
}
