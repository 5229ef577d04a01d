use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::auth::BasicAuth;
use super::body::Chunks;
use super::config::WebConfig;
use crate::collectors::Collectors;

pub struct ServerOptions {
    pub listen: SocketAddr,
    pub telemetry_path: String,
    pub web_config: WebConfig,
    pub max_requests: usize,
}

struct App {
    collectors: Collectors,
    telemetry_path: String,
    auth: Option<BasicAuth>,
    scrapes: Option<Arc<Semaphore>>,
    /// bcrypt checks at once: a flood of bad passwords must not occupy the
    /// blocking pool that scrapes run on.
    auth_checks: Arc<Semaphore>,
}

const MAX_AUTH_CHECKS: usize = 4;

/// A slow client gets this long to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Chunks> {
    respond_chunks(status, content_type, Chunks::from(body.into()))
}

fn respond_chunks(
    status: StatusCode,
    content_type: &'static str,
    body: Chunks,
) -> Response<Chunks> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

async fn handle(app: Arc<App>, req: Request<Incoming>) -> Result<Response<Chunks>, Infallible> {
    if app.auth.is_some() {
        let header = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let Ok(permit) = app.auth_checks.clone().try_acquire_owned() else {
            return Ok(respond(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                "Too many requests\n",
            ));
        };
        let auth_ok = {
            let app = app.clone();
            // bcrypt takes tens of milliseconds: off the async workers.
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                app.auth
                    .as_ref()
                    .is_some_and(|a| a.check(header.as_deref()))
            })
            .await
            .unwrap_or(false)
        };
        if !auth_ok {
            let mut r = respond(
                StatusCode::UNAUTHORIZED,
                "text/plain; charset=utf-8",
                "Unauthorized\n",
            );
            r.headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
            return Ok(r);
        }
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "Method not allowed\n",
        );
        r.headers_mut()
            .insert("allow", HeaderValue::from_static("GET, HEAD"));
        return Ok(r);
    }
    let path = req.uri().path();
    if path == app.telemetry_path {
        // The permit travels into the scrape itself: a client that hangs up
        // does not free a slot while its scrape still runs.
        let permit = match &app.scrapes {
            Some(s) => match s.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    return Ok(respond(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain; charset=utf-8",
                        "Too many concurrent scrapes\n",
                    ));
                }
            },
            None => None,
        };
        let app2 = app.clone();
        let body = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            app2.collectors.scrape()
        })
        .await
        .unwrap_or_default();
        return Ok(respond_chunks(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            Chunks::new(body),
        ));
    }
    if path == "/" {
        let page = format!(
            "<html><head><title>ocinet exporter</title></head><body><h1>ocinet exporter</h1>\
             <p>Per-container network counters and conntrack/NAT statistics for containers networked by ocinet.</p>\
             <p><a href=\"{0}\">{0}</a></p><p>Collectors: {1}</p></body></html>\n",
            app.telemetry_path,
            app.collectors.names().join(", ")
        );
        return Ok(respond(StatusCode::OK, "text/html; charset=utf-8", page));
    }
    Ok(respond(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        "Not found\n",
    ))
}

/// Serve until SIGTERM or SIGINT.
pub async fn serve(opts: ServerOptions, collectors: Collectors) -> Result<(), String> {
    let tls = match &opts.web_config.tls_server_config {
        Some(t) => Some(super::tls::acceptor(t)?),
        None => None,
    };
    let app = Arc::new(App {
        collectors,
        telemetry_path: opts.telemetry_path.clone(),
        auth: BasicAuth::new(opts.web_config.basic_auth_users.clone()),
        scrapes: (opts.max_requests > 0).then(|| {
            Arc::new(Semaphore::new(
                opts.max_requests.min(Semaphore::MAX_PERMITS),
            ))
        }),
        auth_checks: Arc::new(Semaphore::new(MAX_AUTH_CHECKS)),
    });
    let listener = TcpListener::bind(opts.listen)
        .await
        .map_err(|e| format!("listen on {}: {e}", opts.listen))?;
    tracing::info!(address = %opts.listen, tls = tls.is_some(), auth = app.auth.is_some(), "listening");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    continue;
                }
            },
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        };
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(app.clone(), req));
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEAD);
            let result = match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => builder.serve_connection(TokioIo::new(s), service).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, "TLS handshake: {e}");
                            return;
                        }
                        Err(_) => return,
                    }
                }
                None => {
                    builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, "connection: {e}");
            }
        });
    }
    tracing::info!("shutting down");
    Ok(())
}
