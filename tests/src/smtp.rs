//! A local SMTP server for tests: speaks enough SMTP (EHLO/HELO, MAIL FROM,
//! RCPT TO, DATA, RSET, NOOP, QUIT) to capture what a client sends, on a
//! port of its own, with no network beyond the loopback. It can be started
//! down (every connection is answered `421` and closed) and switched up,
//! as a mail server that comes back after an outage.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One message as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent after DATA, dot-stuffing undone, CRLF kept.
    pub data: String,
}

#[derive(Debug, Default)]
struct State {
    up: bool,
    messages: Vec<Captured>,
    /// Connections refused while down.
    refused: usize,
}

/// The server; stops when dropped.
pub struct SmtpServer {
    pub port: u16,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl SmtpServer {
    /// A server that accepts mail.
    pub async fn up() -> Self {
        Self::start(true).await
    }

    /// A server that answers every connection `421` until [`set_up`](Self::set_up).
    pub async fn down() -> Self {
        Self::start(false).await
    }

    async fn start(up: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the SMTP server");
        let port = listener.local_addr().expect("its address").port();
        let state = Arc::new(Mutex::new(State {
            up,
            ..State::default()
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let _ = serve(stream, state).await;
                });
            }
        });
        Self { port, state, task }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From now on, mail is accepted.
    pub fn set_up(&self) {
        self.lock().up = true;
    }

    /// From now on, every connection is answered `421`.
    pub fn set_down(&self) {
        self.lock().up = false;
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<Captured> {
        self.lock().messages.clone()
    }

    /// Connections answered `421` so far.
    pub fn refused(&self) -> usize {
        self.lock().refused
    }

    /// The settings a service needs to send through this server (no TLS,
    /// no authentication).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SEXTANT_SMTP_HOST", "127.0.0.1".into()),
            ("SEXTANT_SMTP_PORT", self.port.to_string()),
            ("SEXTANT_SMTP_TLS", "none".into()),
            (
                "SEXTANT_SMTP_FROM",
                "Sextant <reports@sextant.example>".into(),
            ),
        ]
    }

    /// The same settings, as the command service's configuration holds
    /// them.
    pub fn settings(&self) -> sextant_adapters::config::SmtpSettings {
        sextant_adapters::config::SmtpSettings {
            host: "127.0.0.1".into(),
            port: self.port,
            tls: sextant_adapters::config::SmtpTls::None,
            username: None,
            password: None,
            from: "Sextant <reports@sextant.example>".into(),
            timeout: std::time::Duration::from_secs(10),
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The address inside `MAIL FROM:<…>` or `RCPT TO:<…>`.
fn path_of(argument: &str) -> String {
    let inner = argument
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map(|(address, _)| address)
        .unwrap_or(argument);
    inner.trim().to_owned()
}

async fn serve(stream: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let up = {
        let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
        if !state.up {
            state.refused += 1;
        }
        state.up
    };
    if !up {
        write
            .write_all(b"421 smtp.test Service not available, closing channel\r\n")
            .await?;
        return write.shutdown().await;
    }
    write.write_all(b"220 smtp.test ESMTP ready\r\n").await?;
    let mut lines = BufReader::new(read);
    let mut from = String::new();
    let mut to: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end();
        let upper = command.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            write
                .write_all(b"250-smtp.test\r\n250 8BITMIME\r\n")
                .await?;
        } else if upper.starts_with("HELO") {
            write.write_all(b"250 smtp.test\r\n").await?;
        } else if upper.starts_with("MAIL FROM:") {
            from = path_of(&command[10..]);
            to.clear();
            write.write_all(b"250 OK\r\n").await?;
        } else if upper.starts_with("RCPT TO:") {
            to.push(path_of(&command[8..]));
            write.write_all(b"250 OK\r\n").await?;
        } else if upper == "DATA" {
            write
                .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                data.push_str(unstuffed);
            }
            state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .messages
                .push(Captured {
                    from: from.clone(),
                    to: std::mem::take(&mut to),
                    data,
                });
            write.write_all(b"250 OK: queued\r\n").await?;
        } else if upper == "RSET" {
            from.clear();
            to.clear();
            write.write_all(b"250 OK\r\n").await?;
        } else if upper == "NOOP" {
            write.write_all(b"250 OK\r\n").await?;
        } else if upper == "QUIT" {
            write.write_all(b"221 Bye\r\n").await?;
            return write.shutdown().await;
        } else {
            write.write_all(b"502 Command not implemented\r\n").await?;
        }
    }
}
