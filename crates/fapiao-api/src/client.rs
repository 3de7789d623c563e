//! A typed, blocking client for the node API (used by the CLI and the tests).

use crate::dto::*;
use fapiao_core::{codec, Event, EventId};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// A client call that failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node answered with an error.
    #[error("{status} {}: {}{}", .error.code, .error.message, .error.field.as_ref().map(|f| format!(" (field {f})")).unwrap_or_default())]
    Api {
        /// HTTP status.
        status: u16,
        /// The error body.
        error: ApiError,
        /// The node's `Retry-After` (seconds), when it sent one.
        retry_after_s: Option<u64>,
    },
    /// The node could not be reached, or answered something unreadable.
    #[error("cannot reach the node at {url}: {message}")]
    Transport {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
}

impl ClientError {
    /// The API error code, if the node answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { error, .. } => Some(&error.code),
            ClientError::Transport { .. } => None,
        }
    }

    /// How long the node asked the client to wait (its `Retry-After`), in seconds.
    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            ClientError::Api { retry_after_s, .. } => *retry_after_s,
            ClientError::Transport { .. } => None,
        }
    }

    /// True when retrying later can help (unreachable, busy, maintenance).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Transport { .. } => true,
            ClientError::Api { status, .. } => *status == 503,
        }
    }
}

/// The client.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

impl Client {
    /// A client for the node at `base` (e.g. `http://127.0.0.1:7000`), with the read
    /// token if reads are needed.
    pub fn new(base: &str, token: Option<String>) -> Client {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            // Fails only when the TLS backend cannot start, and this build has none:
            // never silently fall back to a client without the timeout.
            .expect("an HTTP client without TLS builds");
        Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            http,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The status and body of an answer, or the API error it carries.
    fn body(&self, url: &str, r: reqwest::Result<reqwest::blocking::Response>) -> Result<(u16, Vec<u8>), ClientError> {
        let transport = |e: reqwest::Error| ClientError::Transport {
            url: url.to_string(),
            message: e.to_string(),
        };
        let resp = r.map_err(transport)?;
        let status = resp.status().as_u16();
        let retry_after_s = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = resp.bytes().map_err(transport)?;
        if status >= 400 {
            let error = serde_json::from_slice::<ApiError>(&body).unwrap_or_else(|_| ApiError {
                code: format!("HTTP_{status}"),
                message: String::from_utf8_lossy(&body).chars().take(200).collect(),
                field: None,
            });
            return Err(ClientError::Api {
                status,
                error,
                retry_after_s,
            });
        }
        Ok((status, body.to_vec()))
    }

    fn finish<T: DeserializeOwned>(
        &self,
        url: &str,
        r: reqwest::Result<reqwest::blocking::Response>,
    ) -> Result<(u16, T), ClientError> {
        let (status, body) = self.body(url, r)?;
        serde_json::from_slice(&body)
            .map(|v| (status, v))
            .map_err(|e| ClientError::Transport {
                url: url.to_string(),
                message: format!("unreadable answer: {e}"),
            })
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = self.url(path);
        let mut req = self.http.get(&url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        self.finish(&url, req.send()).map(|(_, v)| v)
    }

    /// Submits one event.
    pub fn submit(&self, event: &Event) -> Result<SubmitResult, ClientError> {
        let url = self.url("/v1/events");
        let body = SubmitRequest {
            event: hex::encode(codec::to_bytes(event)),
        };
        self.finish(&url, self.http.post(&url).json(&body).send())
            .map(|(_, v)| v)
    }

    /// Submits several events.
    pub fn submit_batch(&self, events: &[Event]) -> Result<BatchResponse, ClientError> {
        let url = self.url("/v1/events/batch");
        let body = SubmitBatchRequest {
            events: events.iter().map(|e| hex::encode(codec::to_bytes(e))).collect(),
        };
        self.finish(&url, self.http.post(&url).json(&body).send())
            .map(|(_, v)| v)
    }

    /// One block of the node's chain (needs the read token).
    pub fn block(&self, height: u64) -> Result<BlockDto, ClientError> {
        self.get(&format!("/v1/blocks/{height}"))
    }

    /// Reconciliation over business days `from..=to` (`YYYY-MM-DD`).
    pub fn reconciliation(&self, from: &str, to: &str) -> Result<ReconciliationDto, ClientError> {
        self.get(&format!("/v1/reconciliation?from={}&to={}", enc(from), enc(to)))
    }

    /// An invoice's proof bundle (public: the check code is the credential).
    pub fn proof(&self, number: &str, check_code: &str) -> Result<ProofDto, ClientError> {
        self.proof_with(number, &[("check_code", check_code)])
    }

    /// An invoice's proof bundle with the query parameters given: its factors
    /// (`check_code`, or `issue_date` and `total`) and optionally `as_of`, a certified
    /// height or a date (`YYYY-MM-DD`, UTC+8).
    pub fn proof_with(&self, number: &str, params: &[(&str, &str)]) -> Result<ProofDto, ClientError> {
        let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect();
        self.get(&format!("/v1/verify/{}?{}", enc(number), query.join("&")))
    }

    /// An invoice's proof bundle by the platform's factors: its issue date
    /// (`YYYY-MM-DD`, UTC+8) and its total including tax in yuan.
    pub fn proof_by_date_and_total(
        &self,
        number: &str,
        issue_date: &str,
        total: &str,
    ) -> Result<ProofDto, ClientError> {
        self.proof_with(number, &[("issue_date", issue_date), ("total", total)])
    }

    /// An event's status.
    pub fn event_status(&self, id: &EventId) -> Result<EventStatusDto, ClientError> {
        self.get(&format!("/v1/events/{id}"))
    }

    /// What recording the event derived (public: no read token needed).
    pub fn event_outcome(&self, id: &EventId) -> Result<EventOutcomeDto, ClientError> {
        self.get(&format!("/v1/events/{id}/outcome"))
    }

    /// Waits until the event is committed (or certified, or rejected), polling.
    pub fn wait_committed(&self, id: &EventId, timeout: Duration) -> Result<EventStatusDto, ClientError> {
        let start = std::time::Instant::now();
        loop {
            let s = self.event_status(id)?;
            if s.status != "pending" || start.elapsed() > timeout {
                return Ok(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One payment.
    pub fn payment(&self, id: &str) -> Result<PaymentDto, ClientError> {
        self.get(&format!("/v1/payments/{}", enc(id)))
    }

    /// Payments.
    pub fn payments(&self, after: Option<&str>, limit: usize) -> Result<Vec<PaymentDto>, ClientError> {
        let mut q = format!("/v1/payments?limit={limit}");
        if let Some(a) = after {
            q.push_str(&format!("&after={}", enc(a)));
        }
        self.get(&q)
    }

    /// One invoice.
    pub fn invoice(&self, number: &str) -> Result<InvoiceDto, ClientError> {
        self.get(&format!("/v1/invoices/{}", enc(number)))
    }

    /// Block headers of this node's chain from height `from`.
    pub fn blocks(&self, from: u64, limit: u64) -> Result<Vec<HeaderDto>, ClientError> {
        self.get(&format!("/v1/blocks?from={from}&limit={limit}"))
    }

    /// The equivocation evidence the node holds.
    pub fn evidence(&self) -> Result<Vec<EvidenceDto>, ClientError> {
        self.get("/v1/evidence")
    }

    /// An invoice as 数电 XML.
    pub fn invoice_xml(&self, number: &str) -> Result<String, ClientError> {
        let url = self.url(&format!("/v1/invoices/{}.xml", enc(number)));
        let mut req = self.http.get(&url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let (_, body) = self.body(&url, req.send())?;
        String::from_utf8(body).map_err(|e| ClientError::Transport {
            url,
            message: format!("the XML is not UTF-8: {e}"),
        })
    }

    /// A red-letter confirmation form of an invoice.
    pub fn red_form(&self, number: &str, form: u32) -> Result<RedFormDto, ClientError> {
        self.get(&format!("/v1/invoices/{}/forms/{form}", enc(number)))
    }

    /// One page of an invoice's history, after position `after` (`HEIGHT.INDEX`).
    pub fn invoice_history(&self, number: &str, after: Option<&str>) -> Result<InvoiceHistoryDto, ClientError> {
        let mut q = format!("/v1/invoices/{}/history", enc(number));
        if let Some(a) = after {
            q.push_str(&format!("?after={}", enc(a)));
        }
        self.get(&q)
    }

    /// The merchant's invoicing quota.
    pub fn quota(&self) -> Result<QuotaDto, ClientError> {
        self.get("/v1/quota")
    }

    /// Invoices of a request (and its retries).
    pub fn invoices_for_request(&self, request_id: &str) -> Result<Vec<InvoiceDto>, ClientError> {
        self.get(&format!("/v1/invoices?request_id={}", enc(request_id)))
    }

    /// A request's history.
    pub fn request(&self, id: &str) -> Result<RequestHistoryDto, ClientError> {
        self.get(&format!("/v1/requests/{}", enc(id)))
    }

    /// One page of failed requests, after the cursor `after`.
    pub fn failures_page(
        &self,
        reason: Option<&str>,
        open: bool,
        after: Option<&str>,
    ) -> Result<FailureListDto, ClientError> {
        let mut q = format!("/v1/failures?open={open}");
        if let Some(r) = reason {
            q.push_str(&format!("&reason={}", enc(r)));
        }
        if let Some(a) = after {
            q.push_str(&format!("&after={}", enc(a)));
        }
        self.get(&q)
    }

    /// Every failed request, page after page, as one list (counts over all of them).
    pub fn failures(&self, reason: Option<&str>, open: bool) -> Result<FailureListDto, ClientError> {
        let mut all = self.failures_page(reason, open, None)?;
        let mut next = all.next.take();
        while let Some(after) = next {
            let mut page = self.failures_page(reason, open, Some(&after))?;
            next = page.next.take();
            for (code, n) in page.counts {
                *all.counts.entry(code).or_default() += n;
            }
            all.failures.append(&mut page.failures);
        }
        Ok(all)
    }

    /// Node status.
    pub fn status(&self) -> Result<StatusDto, ClientError> {
        self.get("/v1/status")
    }

    /// The admin chain's certified blocks, canonical.
    pub fn configuration(&self) -> Result<ConfigurationDto, ClientError> {
        self.get("/v1/consortium/configuration")
    }

    /// The consortium's configuration and its history.
    pub fn consortium(&self) -> Result<ConsortiumDto, ClientError> {
        self.get("/v1/consortium")
    }
}

/// What [`enc`] leaves as it is: RFC 3986's unreserved characters (ASCII letters and
/// digits, `-`, `_`, `.`, `~`); every other byte is written `%XX`.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Percent-encodes a path or query component.
fn enc(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}
