//! The whole HTTP surface in one function: the Leptos pages, the API, the
//! static files, and the tower layers that guard them.

use std::sync::Arc;

use axum::error_handling::HandleErrorLayer;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::{BoxError, Json, Router};
use leptos::prelude::provide_context;
use leptos_axum::{LeptosRoutes, generate_route_list};
use starcast_api::ErrorBody;
use starcast_app::api::ssr::SharedCatalogue;
use starcast_app::{App, shell};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::state::AppState;
use crate::{api, client, localize, metrics};

/// Builds the app. Tests call it with `oneshot` and bind no port.
pub fn router(state: AppState) -> Router {
    let pages = generate_route_list(App);
    let server_fn_context = {
        let catalogue: SharedCatalogue = Arc::new(state.clone());
        move || provide_context(catalogue.clone())
    };
    let render_shell = {
        let options = state.leptos_options.clone();
        move || shell(options.clone())
    };
    let limits = state.limits;
    // Compressing an event stream would hold tokens back until a buffer fills.
    let compressible =
        DefaultPredicate::new().and(NotForContentType::const_new("text/event-stream"));
    // Outermost first: a caught panic becomes a 500 (the last line of
    // defence, never the plan), then tracing, load shedding, the timeout and
    // compression.
    let guards = ServiceBuilder::new()
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http())
        .layer(HandleErrorLayer::<_, ()>::new(overloaded))
        .load_shed()
        .concurrency_limit(limits.max_concurrent_requests)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(CompressionLayer::new().compress_when(compressible))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(FRAME_ANCESTORS),
        ))
        .layer(axum::middleware::from_fn(same_origin));
    Router::new()
        .merge(api::routes(&state))
        .nest_service("/examples", ServeDir::new(state.examples.dir()))
        .leptos_routes_with_context(&state, pages, server_fn_context, render_shell)
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(axum::middleware::from_fn(localize::errors))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.trusted_proxies.clone(),
            client::identify,
        ))
        .layer(guards)
        .with_state(state)
}

/// Pages may be framed by the Hub (a Space is shown inside huggingface.co)
/// and by nobody else.
const FRAME_ANCESTORS: &str =
    "frame-ancestors 'self' https://huggingface.co https://*.huggingface.co https://*.hf.space";

/// Refuses a request that would change something (any method but GET, HEAD
/// and OPTIONS) when a browser says it comes from another site's page: a
/// page elsewhere can't flag, upload or start runs in a visitor's name.
/// Requests without `Origin` (scripts, curl) are not a browser's and pass.
async fn same_origin(request: Request, next: Next) -> axum::response::Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let headers = request.headers();
    let origin_host = headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(|o| o.split_once("://").map_or(o, |(_, host)| host));
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match origin_host {
        Some(origin) if !safe && Some(origin) != host => {
            tracing::warn!(origin, ?host, "cross-site request refused");
            error_body(
                StatusCode::FORBIDDEN,
                "Requests from another site's page can't change this server: use the app's own pages or call the API without a browser.",
            )
        }
        _ => next.run(request).await,
    }
}

fn error_body(status: StatusCode, error: &str) -> axum::response::Response {
    (
        status,
        Json(ErrorBody {
            error: error.into(),
        }),
    )
        .into_response()
}

fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = detail, "a request handler panicked");
    error_body(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on the server; the error was logged. Try again later.",
    )
}

async fn overloaded(error: BoxError) -> axum::response::Response {
    tracing::warn!(%error, "request refused");
    error_body(
        StatusCode::SERVICE_UNAVAILABLE,
        "The server is busy; try again in a few seconds.",
    )
}
