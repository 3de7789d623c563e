//! The HTTP harness: the real axum router (`fapiao_api::router`) over a real engine and
//! RocksDB store in a temporary directory, for the fixed genesis, built once per fuzzing
//! process and driven in memory (no socket) with `tower::ServiceExt::oneshot`.
//!
//! The property: the server answers every body, never with a 5xx other than 503 (busy,
//! maintenance, storage full), every error answer is the `{code, message, field}` JSON
//! shape, and no thread of the engine panics (libFuzzer's panic hook aborts the process
//! on a panic in any thread, so the engine's own panic guards cannot hide one).

use crate::{genesis, key};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use fapiao_api::dto::ApiError;
use fapiao_api::ApiConfig;
use fapiao_engine::{Engine, EngineConfig};
use fapiao_store::{Store, StoreOptions};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

/// The POST endpoints.
pub const POST_PATHS: [&str; 2] = ["/v1/events", "/v1/events/batch"];

/// The router, its engine and the runtime that drives them.
pub struct Harness {
    runtime: tokio::runtime::Runtime,
    router: Router,
    /// The engine behind the router (the targets sign events for its chain).
    pub engine: Engine,
}

/// The process's harness, built on first use.
pub fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(Harness::start)
}

/// A directory of this process under the system temp directory. Directories left by
/// fuzzing processes that have ended are removed first: the harness lives until the
/// process exits, so nothing else would remove them.
fn ledger_dir() -> PathBuf {
    let base = std::env::temp_dir();
    if let Ok(dirs) = std::fs::read_dir(&base) {
        for d in dirs.flatten() {
            let name = d.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix("fapiao-fuzz-http-") else { continue };
            if !PathBuf::from(format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(d.path());
            }
        }
    }
    let dir = base.join(format!("fapiao-fuzz-http-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

impl Harness {
    fn start() -> Harness {
        let dir = ledger_dir();
        let store = Store::open(&dir, &StoreOptions::default()).unwrap_or_else(|e| panic!("opening the store: {e}"));
        let config = EngineConfig {
            // Cut blocks quickly, so events admitted by one input are executed while
            // the next inputs run (the producer is what executes ledger rules).
            block_interval_ms: 5,
            // The fuzzing directory is small; the node's reserve would only make every
            // answer STORAGE_FULL on a machine with little free disk.
            disk_reserve_bytes: 1024 * 1024,
            ..EngineConfig::default()
        };
        let engine = Engine::start(Arc::new(store), Arc::new(genesis()), key(1), config)
            .unwrap_or_else(|e| panic!("starting the engine: {e}"));
        // The node's limits (body size, page size), as `fapiao node run` has them.
        let api = ApiConfig {
            read_token: "fuzz".into(),
            ..ApiConfig::default()
        };
        let router = fapiao_api::router(engine.clone(), api);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
        Harness { runtime, router, engine }
    }

    /// POSTs `body` to `path` as JSON and checks the answer (see the module doc).
    /// Returns the status and the body.
    pub fn post(&self, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
        let request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap_or_else(|e| panic!("building the request: {e}"));
        let (status, bytes) = self.runtime.block_on(async {
            let response = self.router.clone().oneshot(request).await.unwrap_or_else(|e| match e {});
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap_or_else(|e| panic!("reading the answer: {e}"));
            (status, bytes.to_vec())
        });
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE,
            "POST {path} answered {status}: {text}"
        );
        if !status.is_success() {
            assert!(
                serde_json::from_slice::<ApiError>(&bytes).is_ok(),
                "POST {path} answered {status} without the error shape: {text}"
            );
        }
        assert!(!self.engine.failed(), "an engine thread died (see the panic above)");
        (status, bytes)
    }
}
