//! A small W3C WebDriver client for the console's browser tests: Debian's
//! `chromedriver` driving Debian's `chromium`, headless, over loopback HTTP.
//! (`.ci/run` installs both; `OTC_CHROMIUM` and `OTC_CHROMEDRIVER` point
//! elsewhere.)

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// The key WebDriver names an element by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long a wait for the page lasts before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// A headless Chromium session.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

fn program(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.exists(),
        "{} not found: install Debian's chromium and chromium-driver \
         (apt-get install -y chromium chromium-driver) or set {var}",
        path.display()
    );
    path
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session whose time zone
    /// is `time_zone` (an IANA name) and language English.
    pub async fn start(time_zone: &str) -> Browser {
        let chromium = program("OTC_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = program("OTC_CHROMEDRIVER", "/usr/bin/chromedriver");
        // Port 0: chromedriver picks a free port and prints it (no race
        // with another process for a port we chose).
        let mut driver = Command::new(chromedriver)
            .arg("--port=0")
            .env("TZ", time_zone)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        let stdout = driver.stdout.take().expect("chromedriver stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let port: u16 = tokio::time::timeout(PATIENCE, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    return rest.trim_end_matches('.').trim().parse().ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("chromedriver did not say its port");
        // Keep reading so chromedriver never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let base = format!("127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if let Ok((200, v)) = request(&base, "GET", "/status", None).await
                && v["value"]["ready"] == true
            {
                break;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "chromedriver did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium.display().to_string(),
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        "--disable-dev-shm-usage", "--lang=en-US", "--window-size=1400,1000",
                        format!("--user-data-dir={}", profile.path().display()),
                    ],
                    "prefs": { "intl.accept_languages": "en-US" }
                },
                "goog:loggingPrefs": { "browser": "ALL" }
            }}
        });
        let (status, v) = request(&base, "POST", "/session", Some(caps))
            .await
            .expect("new session");
        assert_eq!(status, 200, "cannot start Chromium: {v}");
        let session = v["value"]["sessionId"]
            .as_str()
            .expect("session id")
            .to_owned();
        Browser {
            driver,
            base,
            session,
            _profile: profile,
        }
    }

    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let path = format!("/session/{}{path}", self.session);
        let (status, v) = request(&self.base, method, &path, body)
            .await
            .map_err(|e| format!("webdriver: {e}"))?;
        if status == 200 {
            Ok(v["value"].clone())
        } else {
            Err(format!(
                "webdriver {method} {path}: {status} {}",
                v["value"]
            ))
        }
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .await
            .expect("navigate");
    }

    /// The first element matching `css`, if any.
    pub async fn find(&self, css: &str) -> Option<String> {
        let v = self
            .cmd(
                "POST",
                "/elements",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await
            .ok()?;
        v.as_array()?.first()?[ELEMENT].as_str().map(str::to_owned)
    }

    /// How many elements match `css`.
    pub async fn count(&self, css: &str) -> usize {
        self.cmd(
            "POST",
            "/elements",
            Some(json!({ "using": "css selector", "value": css })),
        )
        .await
        .ok()
        .and_then(|v| v.as_array().map(Vec::len))
        .unwrap_or(0)
    }

    /// Waits until an element matching `css` is displayed; returns it.
    pub async fn wait_for(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            if let Some(id) = self.find(css).await
                && self
                    .cmd("GET", &format!("/element/{id}/displayed"), None)
                    .await
                    .is_ok_and(|v| v == true)
            {
                return id;
            }
            if started.elapsed() > PATIENCE {
                let body = self.text("body").await;
                panic!("{css} did not appear; the page shows:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `css`'s text contains `text`.
    pub async fn wait_text(&self, css: &str, text: &str) {
        let started = Instant::now();
        loop {
            if self.text(css).await.contains(text) {
                return;
            }
            if started.elapsed() > PATIENCE {
                let body = self.text("body").await;
                panic!("{css} never showed {text:?}; the page shows:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until nothing matches `css`.
    pub async fn wait_gone(&self, css: &str) {
        let started = Instant::now();
        while self.count(css).await > 0 {
            assert!(started.elapsed() < PATIENCE, "{css} did not go away");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The rendered text of the first element matching `css` ("" if none).
    pub async fn text(&self, css: &str) -> String {
        let Some(id) = self.find(css).await else {
            return String::new();
        };
        self.cmd("GET", &format!("/element/{id}/text"), None)
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// An attribute or property of the first element matching `css`.
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let id = self.find(css).await?;
        let v = self
            .cmd("GET", &format!("/element/{id}/attribute/{name}"), None)
            .await
            .ok()?;
        v.as_str().map(str::to_owned)
    }

    /// Clicks the element matching `css` (waiting for it; again if the page
    /// re-rendered it between the find and the click).
    pub async fn click(&self, css: &str) {
        let started = Instant::now();
        loop {
            let id = self.wait_for(css).await;
            match self
                .cmd("POST", &format!("/element/{id}/click"), Some(json!({})))
                .await
            {
                Ok(_) => return,
                Err(e) if e.contains("stale element") && started.elapsed() < PATIENCE => {}
                Err(e) => panic!("click {css}: {e}"),
            }
        }
    }

    /// Types `text` into the element matching `css` (after clearing it).
    pub async fn type_into(&self, css: &str, text: &str) {
        let started = Instant::now();
        loop {
            let id = self.wait_for(css).await;
            let typed = async {
                self.cmd("POST", &format!("/element/{id}/clear"), Some(json!({})))
                    .await?;
                self.cmd(
                    "POST",
                    &format!("/element/{id}/value"),
                    Some(json!({ "text": text })),
                )
                .await
            };
            match typed.await {
                Ok(_) => return,
                Err(e) if e.contains("stale element") && started.elapsed() < PATIENCE => {}
                Err(e) => panic!("type into {css}: {e}"),
            }
        }
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub async fn exec(&self, script: &str, args: Vec<Value>) -> Result<Value, String> {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Waits until `script` returns `expected`; returns what it last returned.
    pub async fn wait_js(&self, script: &str, expected: &Value) {
        let started = Instant::now();
        loop {
            let got = self.exec(script, vec![]).await;
            if got.as_ref().is_ok_and(|v| v == expected) {
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{script} gave {got:?}, never {expected}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs an async `script` whose last argument is the callback.
    pub async fn exec_async(&self, script: &str, args: Vec<Value>) -> Result<Value, String> {
        let _ = self
            .cmd(
                "POST",
                "/timeouts",
                Some(json!({ "script": PATIENCE.as_millis() as u64 * 4 })),
            )
            .await;
        self.cmd(
            "POST",
            "/execute/async",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Whether an alert dialog is open (a script that ran would open one).
    pub async fn alert_open(&self) -> bool {
        self.cmd("GET", "/alert/text", None).await.is_ok()
    }

    /// The browser console's messages so far (errors, CSP reports).
    ///
    /// # Panics
    /// When the log cannot be read: a check of it must not pass vacuously.
    pub async fn console_log(&self) -> Vec<String> {
        let v = self
            .cmd("POST", "/se/log", Some(json!({ "type": "browser" })))
            .await
            .expect("the browser's log");
        v.as_array()
            .expect("log entries")
            .iter()
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Saves a PNG of the page to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let v = self
            .cmd("GET", "/screenshot", None)
            .await
            .expect("screenshot");
        let png = base64_decode(v.as_str().expect("base64"));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }

    /// Opens the console of `s` and signs in with `token`.
    pub async fn sign_in(&self, s: &super::Server, token: &str) {
        self.goto(&s.console).await;
        self.type_into("#token", token).await;
        self.click("#sign-in").await;
        self.wait_for("#who").await;
    }

    /// Resizes the window (screenshots show the viewport only).
    pub async fn set_window(&self, width: u32, height: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await
        .expect("resize");
    }

    /// Ends the session and the driver.
    pub async fn quit(mut self) {
        let _ = self.cmd("DELETE", "", None).await;
        let _ = self.driver.kill().await;
    }
}

/// Standard base64 (the screenshot's encoding).
fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Standard base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One HTTP/1.1 request with a JSON body; the status and the JSON answer.
async fn request(
    authority: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value), String> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| e.to_string())?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    stream
        .write_all(body.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    // chromedriver answers `Connection: close` but may keep the socket open:
    // read the head, then exactly Content-Length bytes.
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let split = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed before the head ended".into());
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    let length: Option<usize> = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok());
    let mut payload = raw[split + 4..].to_vec();
    match length {
        Some(len) => {
            while payload.len() < len {
                let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("connection closed inside the body".into());
                }
                payload.extend_from_slice(&buf[..n]);
            }
            payload.truncate(len);
        }
        None => {
            stream
                .read_to_end(&mut payload)
                .await
                .map_err(|e| e.to_string())?;
            if head.contains("transfer-encoding: chunked") {
                payload = dechunk(&payload);
            }
        }
    }
    let v = if payload.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&payload).map_err(|e| format!("bad JSON from chromedriver: {e}"))?
    };
    Ok((status, v))
}

/// The body of a `transfer-encoding: chunked` response.
pub fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        let end = (start + size).min(data.len());
        out.extend_from_slice(&data[start..end]);
        data = &data[(end + 2).min(data.len())..];
    }
    out
}
