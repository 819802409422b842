//! E-mail over SMTP, with `lettre`: one connection per message (no pool),
//! TLS by rustls as [`SmtpTls`] says, and errors that never carry the
//! credentials.
//!
//! A [`Mailer`] sends one [`Mail`]: an HTML body (with a plain-text
//! alternative) and attachments, to every recipient at once.

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::{SmtpSettings, SmtpTls};

/// A file attached to a mail.
#[derive(Debug, Clone)]
pub struct MailAttachment {
    pub filename: String,
    /// A MIME type, such as `text/csv; charset=utf-8`.
    pub content_type: String,
    pub body: Vec<u8>,
}

/// One message to send.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub attachments: Vec<MailAttachment>,
}

/// What sending failed with, as it may be recorded: the server's answer
/// or the connection's error, never the credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MailError(pub String);

/// Sends mail through the configured server.
#[derive(Clone)]
pub struct Mailer {
    settings: SmtpSettings,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("host", &self.settings.host)
            .field("port", &self.settings.port)
            .field("tls", &self.settings.tls)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Fails when the sender is not an address or TLS cannot be set up.
    pub fn new(settings: SmtpSettings) -> Result<Self, MailError> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|e| MailError(format!("SEXTANT_SMTP_FROM: {e}")))?;
        let tls = match settings.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls | SmtpTls::Tls => {
                let parameters = TlsParameters::new(settings.host.clone())
                    .map_err(|e| MailError(format!("TLS: {e}")))?;
                if settings.tls == SmtpTls::Tls {
                    Tls::Wrapper(parameters)
                } else {
                    Tls::Required(parameters)
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .tls(tls)
            .timeout(Some(settings.timeout));
        if let Some(username) = &settings.username {
            let password = settings
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_owned())
                .unwrap_or_default();
            builder = builder.credentials(Credentials::new(username.clone(), password));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            settings,
        })
    }

    /// Sends `mail` to all its recipients in one transaction.
    pub async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let message = self.message(mail)?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| self.scrubbed(&e))
    }

    fn message(&self, mail: &Mail) -> Result<Message, MailError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(mail.subject.clone());
        for to in &mail.to {
            let mailbox: Mailbox = to
                .parse()
                .map_err(|e| MailError(format!("recipient {to:?}: {e}")))?;
            builder = builder.to(mailbox);
        }
        let body = MultiPart::alternative()
            .singlepart(SinglePart::plain(mail.text.clone()))
            .singlepart(SinglePart::html(mail.html.clone()));
        let mut parts = MultiPart::mixed().multipart(body);
        for attachment in &mail.attachments {
            let content_type = ContentType::parse(&attachment.content_type)
                .map_err(|e| MailError(format!("attachment type: {e}")))?;
            parts = parts.singlepart(
                Attachment::new(attachment.filename.clone())
                    .body(attachment.body.clone(), content_type),
            );
        }
        builder
            .multipart(parts)
            .map_err(|e| MailError(format!("message: {e}")))
    }

    /// The error and its causes as one line, with the password (should a
    /// server ever echo it) blanked out.
    fn scrubbed(&self, err: &(dyn std::error::Error + 'static)) -> MailError {
        let mut text = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.contains(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            source = cause.source();
        }
        if let Some(password) = &self.settings.password {
            let password = password.expose_secret();
            if !password.is_empty() {
                text = text.replace(password, "[redacted]");
            }
        }
        MailError(text)
    }
}
