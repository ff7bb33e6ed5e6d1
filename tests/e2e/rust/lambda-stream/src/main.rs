//! One `bootstrap` for a provided.al2023 function, two handlers chosen by
//! the function's Handler (the runtime reads it from `_HANDLER`):
//!   stream   -> a lambda_runtime StreamResponse written in several chunks
//!               (the runtime posts it with Response-Mode: streaming,
//!               chunked encoding and error trailers);
//!   buffered -> a plain JSON value (an ordinary buffered response);
//!   fail     -> an Err (the runtime posts it to /invocation/{id}/error).
use lambda_runtime::{
    service_fn,
    streaming::{channel, Body, Response},
    Error, LambdaEvent,
};
use serde_json::{json, Value};
use std::time::Duration;

const CHUNKS: usize = 5;

fn name_of(event: &Value) -> String {
    event
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("nobody")
        .to_string()
}

async fn stream(event: LambdaEvent<Value>) -> Result<Response<Body>, Error> {
    let name = name_of(&event.payload);
    let (mut tx, rx) = channel();
    tokio::spawn(async move {
        for i in 0..CHUNKS {
            let line = format!("chunk {} of {} for {}\n", i + 1, CHUNKS, name);
            if tx.send_data(line.into()).await.is_err() {
                return;
            }
            // Let each piece leave as its own HTTP chunk.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    Ok(Response::from(rx))
}

async fn buffered(event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(json!({
        "hello": name_of(&event.payload),
        "request_id": event.context.request_id,
        "runtime": "rust",
    }))
}

async fn fail(event: LambdaEvent<Value>) -> Result<Value, Error> {
    Err(format!("rust handler refused {}", name_of(&event.payload)).into())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let handler = std::env::var("_HANDLER").unwrap_or_default();
    if handler == "buffered" {
        lambda_runtime::run(service_fn(buffered)).await
    } else if handler == "fail" {
        lambda_runtime::run(service_fn(fail)).await
    } else {
        lambda_runtime::run(service_fn(stream)).await
    }
}
