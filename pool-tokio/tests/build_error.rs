//! `BuildError` in an error chain and as an `io::Error`.

use std::error::Error;

use pool_tokio::{BuildError, BytesPool};

/// Every message of an error chain, outermost first (what `anyhow`'s
/// `{:#}` or a `Caused by:` report prints).
fn chain(e: &(dyn Error + 'static)) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut next = e.source();
    while let Some(e) = next {
        out.push(e.to_string());
        next = e.source();
    }
    out
}

/// Issue 17: the config error's message was printed twice in a chain
/// (`BuildError::Config`'s message was its source's, and it named that
/// source too).
#[test]
fn a_config_error_prints_its_message_once_in_a_chain() {
    let err = BytesPool::builder()
        .config(pool_core::BufferConfig::new().min_class(1000))
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::Config(_)));
    let messages = chain(&err);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0].contains("`min_class` = 1000"), "{messages:?}");
    // Through io::Error as well: io::Error's source is the BuildError.
    let io: std::io::Error = err.into();
    let messages = chain(&io);
    let with_setting = messages.iter().filter(|m| m.contains("min_class")).count();
    assert_eq!(with_setting, 1, "{messages:?}");
}

#[test]
fn build_errors_convert_into_io_errors() {
    fn start() -> std::io::Result<BytesPool> {
        Ok(BytesPool::builder().budget(0).build()?)
    }
    let err = start().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("budget"), "{err}");
    let inner = err.get_ref().unwrap().downcast_ref::<BuildError>();
    assert!(matches!(inner, Some(BuildError::Budget { budget: 0, .. })));
}

/// An empty name would be an empty `pool` label on every metric, which is
/// no label to Prometheus: refused, with a message naming the setting.
#[test]
fn an_empty_name_is_refused() {
    let err = BytesPool::builder().name("").build().unwrap_err();
    assert_eq!(err, BuildError::EmptyName);
    assert!(err.to_string().contains("`name`"), "{err}");
    assert!(BytesPool::builder().name("a").build().is_ok());
}
