//! Serving the router over TCP. Connections are driven by hyper directly (not `axum::serve`) so a
//! `reset` fault can end a connection without writing any response.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceExt;

use crate::config::SimConfig;
use crate::faults::ResetConnection;
use crate::state::SimState;

/// A simulator listening on a TCP port.
#[derive(Debug)]
pub struct RunningSim {
    /// `http://127.0.0.1:PORT` (no `/api` suffix).
    pub base_url: String,
    /// The live state (faults, fleets, clock can be changed in-process).
    pub state: SimState,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningSim {
    /// Stops accepting, lets in-flight requests finish and closes idle connections.
    pub async fn shutdown(self) {
        // A send error means every receiver is gone, i.e. nothing left to stop.
        let _ = self.shutdown.send(true);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "simulator accept loop ended abnormally");
        }
    }
}

/// Binds `addr` (port 0 picks a free port) and serves a fresh simulator until `shutdown`.
pub async fn start(config: SimConfig, addr: SocketAddr) -> io::Result<RunningSim> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let state = SimState::new(config);
    let router = crate::app(state.clone());
    let (shutdown, signal) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, router, signal));
    tracing::info!(%local, "simulator listening");
    Ok(RunningSim {
        base_url: format!("http://{local}"),
        state,
        shutdown,
        task,
    })
}

/// Resolves once shutdown is requested; never if the `RunningSim` was dropped without `shutdown`
/// (the server then lives as long as the runtime).
async fn shutdown_requested(signal: &mut watch::Receiver<bool>) {
    loop {
        if *signal.borrow_and_update() {
            return;
        }
        if signal.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

async fn accept_loop(listener: TcpListener, router: Router, mut signal: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = shutdown_requested(&mut signal) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(stream, router.clone(), signal.clone()));
                }
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// Returned to hyper to abort a connection without a response.
#[derive(Debug, thiserror::Error)]
#[error("connection reset by fault injection")]
struct InjectedReset;

async fn serve_connection(stream: TcpStream, router: Router, mut signal: watch::Receiver<bool>) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "set_nodelay failed");
    }
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let router = router.clone();
        async move {
            let response = match router.oneshot(request.map(Body::new)).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            if response.extensions().get::<ResetConnection>().is_some() {
                Err(InjectedReset)
            } else {
                Ok(response)
            }
        }
    });
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        () = shutdown_requested(&mut signal) => {
            connection.as_mut().graceful_shutdown();
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error during shutdown");
            }
        }
    }
}
