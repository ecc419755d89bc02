//! One attempt at delivering one alert: its notifier's templates rendered, its connection read (secrets backends
//! first), then an HTTP POST or an e-mail over SMTP.

use std::time::Duration;

use lettre::message::{Mailbox, Message, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde_json::{Value, json};
use sluice_core::connection::Connection;
use sluice_core::notify::{Notifier, render};
use sluice_core::openlineage::LINEAGE_EVENT;
use sluice_store::{NewNotification, Store};

use crate::LineageTarget;

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The alert cannot be delivered as written (a template error, a bad address): retrying would fail the same.
    #[error("{0}")]
    Invalid(String),
    #[error("connection {0:?} does not exist")]
    NoConnection(String),
    #[error("{0}")]
    Store(#[from] sluice_store::Error),
    #[error("{0}")]
    Http(String),
    #[error("SMTP: {0}")]
    Smtp(String),
}

impl DeliveryError {
    /// Whether another attempt cannot do better.
    pub fn is_permanent(&self) -> bool {
        matches!(self, DeliveryError::Invalid(_))
    }
}

/// What delivers: the HTTP client is shared by every webhook.
pub(crate) struct Delivery {
    store: Store,
    http: reqwest::Client,
    timeout: Duration,
    lineage: Option<LineageTarget>,
}

impl Delivery {
    pub(crate) fn new(
        store: Store,
        timeout: Duration,
        lineage: Option<LineageTarget>,
    ) -> Result<Delivery, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(Delivery { store, http, timeout, lineage })
    }

    pub(crate) async fn deliver(&self, alert: &NewNotification) -> Result<(), DeliveryError> {
        if alert.event == LINEAGE_EVENT {
            return self.post_lineage(&alert.context).await;
        }
        let notifier: Notifier = serde_json::from_value(alert.notifier.clone())
            .map_err(|e| DeliveryError::Invalid(format!("unreadable notifier: {e}")))?;
        let conn_id = notifier.connection();
        let connection = self
            .store
            .resolve_connection(conn_id)
            .await?
            .ok_or_else(|| DeliveryError::NoConnection(conn_id.to_owned()))?
            .into_connection()
            .map_err(|e| DeliveryError::Invalid(format!("connection {conn_id:?} cannot be used: {e}")))?;
        let context = &alert.context;
        let text = |template: &Option<String>| -> Result<String, DeliveryError> {
            match template {
                Some(template) => render(template, context).map_err(DeliveryError::Invalid),
                None => Ok(context["message"].as_str().unwrap_or_default().to_owned()),
            }
        };
        match &notifier {
            Notifier::Webhook { endpoint, text: message, body, .. } => {
                let endpoint = endpoint.as_deref().map(|e| render(e, context)).transpose();
                let endpoint = endpoint.map_err(DeliveryError::Invalid)?;
                let body = match body {
                    Some(body) => render(body, context).map_err(DeliveryError::Invalid)?,
                    None => json!({"text": text(message)?}).to_string(),
                };
                self.post(&connection, endpoint.as_deref().unwrap_or(""), body).await
            }
            Notifier::Email { to, cc, subject, text: message, .. } => {
                let subject = match subject {
                    Some(_) => text(subject)?,
                    None => format!("Sluice: {}", context["message"].as_str().unwrap_or_default()),
                };
                let body = text(message)?;
                self.mail(&connection, to, cc, &subject, body).await
            }
        }
    }

    /// An OpenLineage run event, to the lineage server.
    async fn post_lineage(&self, event: &Value) -> Result<(), DeliveryError> {
        let target = self.lineage.as_ref().ok_or_else(|| {
            DeliveryError::Invalid("a lineage event, and this process has no SLUICE_OPENLINEAGE_URL".into())
        })?;
        let mut request = self.http.post(&target.url).json(event);
        if let Some(key) = &target.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|e| DeliveryError::Http(format!("POST {}: {e}", target.url)))?;
        check_status(response, &target.url).await
    }

    /// A webhook: JSON when the body is JSON, plain text otherwise; the connection's `login`/`password` as basic
    /// authentication, and its `extra` as headers, as Airflow's HTTP connections.
    async fn post(&self, connection: &Connection, endpoint: &str, body: String) -> Result<(), DeliveryError> {
        let url = connection.http_url(endpoint).map_err(DeliveryError::Invalid)?;
        let content_type = if serde_json::from_str::<Value>(&body).is_ok() { "application/json" } else { "text/plain" };
        let mut request = self.http.post(url.clone()).header(reqwest::header::CONTENT_TYPE, content_type).body(body);
        if let Some(login) = &connection.login {
            request = request.basic_auth(login, connection.password.as_deref());
        }
        for (name, value) in connection.extra.iter().flatten() {
            let value = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            request = request.header(name.as_str(), value);
        }
        let response = request.send().await.map_err(|e| DeliveryError::Http(format!("POST {url}: {e}")))?;
        check_status(response, url.as_str()).await
    }

    /// An e-mail through the connection's SMTP server, as Airflow's SMTP connections: implicit TLS unless `extra`
    /// has `disable_ssl`, then STARTTLS unless it has `disable_tls`; the sender is `extra.from_email`, else the
    /// login.
    async fn mail(
        &self,
        connection: &Connection,
        to: &[String],
        cc: &[String],
        subject: &str,
        body: String,
    ) -> Result<(), DeliveryError> {
        let host = connection
            .host
            .as_deref()
            .ok_or_else(|| DeliveryError::Invalid("the SMTP connection has no host".into()))?;
        let flag = |key: &str| connection.extra_str(key).is_some_and(|v| matches!(v.as_str(), "true" | "True" | "1"));
        let builder = if !flag("disable_ssl") {
            AsyncSmtpTransport::<Tokio1Executor>::relay(host)
        } else if !flag("disable_tls") {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
        } else {
            Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host))
        };
        let mut builder = builder.map_err(|e| DeliveryError::Smtp(e.to_string()))?.timeout(Some(self.timeout));
        if let Some(port) = connection.port {
            builder = builder.port(port);
        }
        if let (Some(login), Some(password)) = (&connection.login, &connection.password) {
            builder = builder.credentials(Credentials::new(login.clone(), password.clone()));
        }
        let from = connection
            .extra_str("from_email")
            .or_else(|| connection.login.clone().filter(|login| login.contains('@')))
            .unwrap_or_else(|| "sluice@localhost".to_owned());
        let mailbox = |address: &str| -> Result<Mailbox, DeliveryError> {
            address.trim().parse().map_err(|e| DeliveryError::Invalid(format!("address {address:?}: {e}")))
        };
        let mut message = Message::builder().from(mailbox(&from)?).subject(subject);
        for address in to.iter().filter(|a| !a.trim().is_empty()) {
            message = message.to(mailbox(address)?);
        }
        for address in cc.iter().filter(|a| !a.trim().is_empty()) {
            message = message.cc(mailbox(address)?);
        }
        let message = message
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| DeliveryError::Invalid(format!("the e-mail cannot be built: {e}")))?;
        builder.build().send(message).await.map_err(|e| DeliveryError::Smtp(e.to_string()))?;
        Ok(())
    }
}

/// A 2xx answer, or an error with the status and the start of the answer.
async fn check_status(response: reqwest::Response, url: &str) -> Result<(), DeliveryError> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let answer = response.text().await.unwrap_or_default();
    let excerpt: String = answer.chars().take(200).collect();
    Err(DeliveryError::Http(format!("HTTP {status} from {url}: {excerpt}")))
}
