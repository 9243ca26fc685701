//! The API's extractors: a JSON body, path and query whose rejections
//! are the API's typed errors (a stable code and a sentence), never
//! axum's plain-text ones.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::{ApiError, MAX_BODY_BYTES};

/// A JSON body: its rejections in the API's error shape.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(r) => Err(match r {
                JsonRejection::JsonSyntaxError(e) => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "malformed_json",
                    format!("the body is not JSON: {}", e.body_text()),
                ),
                JsonRejection::JsonDataError(e) => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_body",
                    format!(
                        "the body does not fit this request (see the OpenAPI document): {}",
                        e.body_text()
                    ),
                ),
                JsonRejection::MissingJsonContentType(_) => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as Content-Type: application/json",
                ),
                other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the body is larger than {MAX_BODY_BYTES} bytes"),
                ),
                other => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("the body could not be read: {}", other.body_text()),
                ),
            }),
        }
    }
}

/// A part of the request that does not parse: `400 code`, `what` and why.
fn unparsable(code: &'static str, what: &str, why: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, format!("{what}: {why}"))
}

/// A typed path: a parameter that does not parse is `400 bad_path`.
pub struct PathArg<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathArg<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| PathArg(v))
            .map_err(|e: PathRejection| {
                unparsable(
                    "bad_path",
                    "a path parameter is not valid (ids are integers)",
                    e.body_text(),
                )
            })
    }
}

/// A typed query: one that does not parse is `400 bad_query`.
pub struct QueryArg<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryArg<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| QueryArg(v))
            .map_err(|e: QueryRejection| {
                unparsable("bad_query", "the query string is not valid", e.body_text())
            })
    }
}
