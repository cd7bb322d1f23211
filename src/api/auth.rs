//! [`AuthLayer`]: every gRPC call passes [`Access`] before it reaches a service.
//!
//! A tower layer around the whole router, because it needs the call's path (which tonic's
//! per-service interceptors do not see): read-only calls need a `read` or `control` token,
//! everything else `control`, health checks nothing (see [`crate::access::grpc_role`]).

use std::sync::Arc;

use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::codegen::{BoxFuture, Context, Poll, Service};

use crate::access::{Access, Denied, bearer, grpc_role};

/// Wraps the gRPC router with the token check.
#[derive(Clone)]
pub struct AuthLayer {
    access: Arc<Access>,
}

impl AuthLayer {
    /// A layer checking calls against `access`.
    pub fn new(access: Arc<Access>) -> Self {
        Self { access }
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = Authorized<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authorized {
            inner,
            access: self.access.clone(),
        }
    }
}

/// The router behind the token check.
#[derive(Clone)]
pub struct Authorized<S> {
    inner: S,
    access: Arc<Access>,
}

/// The gRPC status for a refused call.
pub fn denied_status(denied: Denied) -> Status {
    match denied {
        Denied::Missing | Denied::Unknown => Status::unauthenticated(denied.to_string()),
        Denied::ReadOnly => Status::permission_denied(denied.to_string()),
    }
}

impl<S, B> Service<Request<B>> for Authorized<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let verdict = match grpc_role(request.uri().path()) {
            None => Ok(()),
            Some(need) => {
                let presented = request
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(bearer);
                self.access.check(presented, need)
            }
        };
        match verdict {
            Ok(()) => Box::pin(self.inner.call(request)),
            Err(denied) => {
                tracing::debug!(path = request.uri().path(), %denied, "gRPC call refused");
                let response = denied_status(denied).into_http();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}
