//! The network readiness probes and the parsing of their targets.

use std::fmt;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time;

/// A [`ProcessSpec`](crate::ProcessSpec) value that can never work, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSpec {
    /// The field, as the config names it under `runtime`: `probe.address`,
    /// `probe.url`, `stop_signal`, `umask`, `user`, `group` or `groups`.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for InvalidSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", self.field, self.reason)
    }
}

impl std::error::Error for InvalidSpec {}

/// Where a tcp probe connects: `host:port`, the host a name or an address
/// (IPv6 in brackets), the port 1 to 65535.
pub(crate) fn tcp_target(address: &str) -> Result<String, InvalidSpec> {
    let invalid = |reason: String| InvalidSpec {
        field: "probe.address",
        reason,
    };
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(invalid(format!(
            "must be host:port, got {address:?} (no port)"
        )));
    };
    check_host(host)
        .map_err(|why| invalid(format!("must be host:port, got {address:?} ({why})")))?;
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(invalid(format!(
            "must be host:port with a port from 1 to 65535, got {address:?}"
        ))),
        Ok(_) => Ok(address.to_owned()),
    }
}

fn check_host(host: &str) -> Result<(), &'static str> {
    if host.is_empty() {
        return Err("no host");
    }
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or("an unclosed `[`")?;
        return inner
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| "not an IPv6 address in the brackets");
    }
    if host.contains(':') {
        return Err("an IPv6 host goes in brackets");
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "/?#@[]".contains(c))
    {
        return Err("not a host name or address");
    }
    Ok(())
}

/// What an http probe asks: where to connect, the `Host` header, and the
/// request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpTarget {
    pub(crate) connect: String,
    pub(crate) host: String,
    pub(crate) path: String,
}

/// Parses an `http://host[:port][/path]` URL with the `http` crate's parser;
/// the port defaults to 80.
pub(crate) fn http_target(url: &str) -> Result<HttpTarget, InvalidSpec> {
    let invalid = |reason: String| InvalidSpec {
        field: "probe.url",
        reason,
    };
    if !url.contains("://") {
        return Err(invalid(format!("must be an http:// URL, got {url:?}")));
    }
    let uri: http::Uri = url
        .parse()
        .map_err(|e| invalid(format!("is not a URL ({e}), got {url:?}")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(invalid(format!(
                "must be an http:// URL, got {other}:// in {url:?}"
            )))
        }
        None => return Err(invalid(format!("must be an http:// URL, got {url:?}"))),
    }
    let Some(authority) = uri.authority() else {
        return Err(invalid(format!("has no host, got {url:?}")));
    };
    if authority.as_str().contains('@') {
        return Err(invalid(format!(
            "must not carry a user name or password, got {url:?}"
        )));
    }
    let host = authority.host();
    check_host(host).map_err(|why| invalid(format!("has a bad host ({why}), got {url:?}")))?;
    let port = match authority.port() {
        None => 80,
        Some(port) => match port.as_u16() {
            0 => return Err(invalid(format!("has port 0, got {url:?}"))),
            port => port,
        },
    };
    if authority.as_str().ends_with(':') {
        return Err(invalid(format!("has an empty port, got {url:?}")));
    }
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| !p.is_empty())
        .unwrap_or("/");
    Ok(HttpTarget {
        connect: format!("{host}:{port}"),
        host: authority.as_str().to_owned(),
        path: path.to_owned(),
    })
}

/// One TCP connect; `Ok` once it succeeds.
pub(crate) async fn tcp(address: &str, timeout: Duration) -> io::Result<()> {
    time::timeout(timeout, TcpStream::connect(address))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {timeout:?}"),
            )
        })??;
    Ok(())
}

/// `GET` over HTTP/1.1; `Ok` for a 2xx or 3xx status, an error naming the
/// status otherwise.
pub(crate) async fn http(target: &HttpTarget, timeout: Duration) -> io::Result<()> {
    let get = async {
        let mut stream = TcpStream::connect(&target.connect).await?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            target.path, target.host
        );
        stream.write_all(request.as_bytes()).await?;
        let mut status_line = String::new();
        BufReader::new(stream.take(1024))
            .read_line(&mut status_line)
            .await?;
        let code: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an HTTP answer"))?;
        if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(io::Error::other(format!("answered {code}")))
        }
    };
    time::timeout(timeout, get).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {timeout:?}"),
        )
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_targets_need_a_host_and_a_port() {
        assert!(tcp_target("127.0.0.1:6379").is_ok());
        assert!(tcp_target("localhost:80").is_ok());
        assert!(tcp_target("[::1]:80").is_ok());
        for bad in [
            "39501",
            ":39501",
            "127.0.0.1:",
            "127.0.0.1:0",
            "h:70000",
            "::1:80",
            "[::1:80",
            "a b:1",
        ] {
            let err = tcp_target(bad).unwrap_err();
            assert_eq!(err.field, "probe.address", "{bad}");
            assert!(err.reason.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
    }

    #[test]
    fn http_urls_default_to_port_80() {
        let target = http_target("http://localhost/").unwrap();
        assert_eq!(target.connect, "localhost:80");
        assert_eq!(target.path, "/");
        let target = http_target("http://127.0.0.1:8080/health?full=1").unwrap();
        assert_eq!(target.connect, "127.0.0.1:8080");
        assert_eq!(target.host, "127.0.0.1:8080");
        assert_eq!(target.path, "/health?full=1");
        assert_eq!(http_target("http://[::1]:81").unwrap().connect, "[::1]:81");
    }

    #[test]
    fn bad_urls_say_why() {
        for (bad, says) in [
            ("https://localhost/", "https://"),
            ("localhost:80/", "http://"),
            ("http://", "URL"),
            ("http://:80/", "host"),
            ("http://u:p@localhost/", "password"),
            ("http://localhost:0/", "port 0"),
            ("http://local host/", "URL"),
            ("http://localhost/\r\nX: y", "URL"),
        ] {
            let err = http_target(bad).unwrap_err();
            assert_eq!(err.field, "probe.url");
            assert!(err.reason.contains(says), "{bad}: {err}");
        }
    }
}
