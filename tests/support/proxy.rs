//! A fault-injecting HTTP/1.1 proxy on loopback, in front of a real router.
//!
//! The proxy binds `127.0.0.1:0` and serves clients with keep-alive, one request at a time
//! per connection. Each request is matched against a list of scripted [`Rule`]s; the first
//! rule that matches and still has budget decides its [`Fault`], otherwise the request is
//! forwarded untouched. Forwarding opens a fresh upstream connection (`Connection: close`),
//! reads the whole answer (de-chunking it) and sends it back with a `Content-Length`, so that
//! a fault can act on exact body bytes: flip one, or cut the answer halfway.
//!
//! Every request is logged with the fault it got; dropping the proxy stops it and every
//! connection it serves.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What the proxy does to a request a rule picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Reads the request, forwards nothing, closes the connection: the router never sees it.
    Drop,
    /// Forwards the request, then sends back only half of the answer and closes: the router
    /// acted, the client does not know.
    DropMidResponse,
    /// Answers this status (with a JSON `detail`) without forwarding.
    Status(u16),
    /// Waits, then forwards as usual (even if the client gave up meanwhile, as a slow
    /// middlebox would).
    Delay(Duration),
    /// Forwards, then flips (XOR 0xFF) the middle byte of the answer's body.
    Corrupt,
    /// Forwards, then sets the answer's header `.0` to `.1` (replacing it when present).
    SetHeader(&'static str, &'static str),
}

/// The head of a proxied request, as rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    /// Path and query, still percent-encoded.
    pub path: String,
    /// The fault it got, if any.
    pub fault: Option<Fault>,
}

type Matcher = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// A scripted fault: which requests (a predicate on method and path), which of them (let
/// the first `skip` matches through, then fire on up to `times` of the rest), and what to do.
pub struct Rule {
    matcher: Matcher,
    fault: Fault,
    skip: usize,
    times: usize,
    matched: AtomicUsize,
    fired: AtomicUsize,
}

impl Rule {
    /// Fires `fault` on every request for which `matcher(method, path)` holds.
    pub fn when(
        matcher: impl Fn(&str, &str) -> bool + Send + Sync + 'static,
        fault: Fault,
    ) -> Self {
        Self {
            matcher: Arc::new(matcher),
            fault,
            skip: 0,
            times: usize::MAX,
            matched: AtomicUsize::new(0),
            fired: AtomicUsize::new(0),
        }
    }

    /// Lets the first `n` matching requests through.
    pub fn skip(mut self, n: usize) -> Self {
        self.skip = n;
        self
    }

    /// Fires at most `n` times.
    pub fn times(mut self, n: usize) -> Self {
        self.times = n;
        self
    }

    /// Counts a matching request; `true` when this one gets the fault. `may_fire` is false
    /// when an earlier rule decided already: the request still counts for `skip`, but not
    /// for `times`.
    fn take(&self, may_fire: bool) -> bool {
        let n = self.matched.fetch_add(1, Ordering::SeqCst);
        if !may_fire || n < self.skip {
            return false;
        }
        self.fired
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| {
                (f < self.times).then_some(f + 1)
            })
            .is_ok()
    }

    /// How many times it fired.
    pub fn fired(&self) -> usize {
        self.fired.load(Ordering::SeqCst)
    }
}

/// `R1`: `POST /api/v4/buckets/{bucket}/metadata` (announce a chunk).
pub fn is_put_metadata(method: &str, path: &str) -> bool {
    method == "POST" && path.starts_with("/api/v4/buckets/") && path.ends_with("/metadata")
}

/// `R2`: `POST /api/v4/buckets/data/{task}/chunked` (a chunk's bytes).
pub fn is_upload(method: &str, path: &str) -> bool {
    method == "POST" && path.starts_with("/api/v4/buckets/data/") && path.ends_with("/chunked")
}

/// `R4`: `GET /api/v4/buckets/{bucket}/metadata/{key}`.
pub fn is_get_metadata(method: &str, path: &str) -> bool {
    method == "GET" && path.starts_with("/api/v4/buckets/") && path.contains("/metadata/")
}

/// `R5`: `GET /api/v4/buckets/{bucket}/{key}` (a chunk's bytes).
pub fn is_get_data(method: &str, path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/api/v4/buckets/") else {
        return false;
    };
    let rest = rest.split('?').next().unwrap_or("");
    method == "GET"
        && rest.split('/').count() == 2
        && !rest.starts_with("data/")
        && !rest.contains("metadata")
}

struct Shared {
    upstream: SocketAddr,
    rules: Mutex<Vec<Arc<Rule>>>,
    log: Mutex<Vec<Seen>>,
    /// Requests being handled (a delayed one counts until it is answered or abandoned).
    in_flight: watch::Sender<usize>,
    /// Answer headers removed from everything forwarded.
    hidden: Mutex<Vec<String>>,
}

/// Counts a request in flight until dropped.
struct InFlight<'a>(&'a watch::Sender<usize>);

impl<'a> InFlight<'a> {
    fn new(counter: &'a watch::Sender<usize>) -> Self {
        counter.send_modify(|n| *n += 1);
        Self(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl Shared {
    fn decide(&self, method: &str, path: &str) -> Option<Fault> {
        let rules = self.rules.lock().unwrap().clone();
        // Every matching rule counts the request (so `skip` means "the first n matches"),
        // the first one with budget left decides.
        let mut fault = None;
        for rule in rules {
            if (rule.matcher)(method, path) && rule.take(fault.is_none()) {
                fault = Some(rule.fault);
            }
        }
        self.log.lock().unwrap().push(Seen {
            method: method.to_owned(),
            path: path.to_owned(),
            fault,
        });
        fault
    }
}

/// The proxy; dropping it stops it.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` with no rules (a transparent proxy).
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream,
            rules: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            in_flight: watch::channel(0).0,
            hidden: Mutex::new(Vec::new()),
        });
        let task_shared = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            // Owned here: aborting the accept loop drops (and aborts) every connection.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                connections.spawn(serve(stream, Arc::clone(&task_shared)));
                while connections.try_join_next().is_some() {}
            }
        });
        Self { addr, shared, task }
    }

    /// Adds a rule after the existing ones; the handle reads how often it fired.
    pub fn push(&self, rule: Rule) -> Arc<Rule> {
        let rule = Arc::new(rule);
        self.shared.rules.lock().unwrap().push(Arc::clone(&rule));
        rule
    }

    /// Removes the header `name` from every answer from now on, e.g. `x-mictlanx-metadata`
    /// to make our router look like a MictlanX one.
    pub fn hide_response_header(&self, name: &str) {
        self.shared.hidden.lock().unwrap().push(name.to_owned());
    }

    /// Removes every rule: from now on the proxy is transparent.
    pub fn clear(&self) {
        self.shared.rules.lock().unwrap().clear();
    }

    /// `mictlanx://{id}@127.0.0.1:{port}/?protocol=http`
    pub fn uri(&self, id: &str) -> String {
        format!("mictlanx://{id}@{}/?protocol=http", self.addr)
    }

    /// Waits until no request is being handled, e.g. until a delayed request the client gave
    /// up on has reached the router anyway.
    pub async fn idle(&self) {
        let mut rx = self.shared.in_flight.subscribe();
        tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|n| *n == 0))
            .await
            .expect("the proxy settles")
            .expect("the proxy is alive");
    }

    /// Every request so far, in arrival order.
    pub fn log(&self) -> Vec<Seen> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Requests that got a fault.
    pub fn faults_injected(&self) -> usize {
        self.log().iter().filter(|s| s.fault.is_some()).count()
    }

    /// Requests for which `matcher(method, path)` holds.
    pub fn count(&self, matcher: impl Fn(&str, &str) -> bool) -> usize {
        self.log()
            .iter()
            .filter(|s| matcher(&s.method, &s.path))
            .count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A parsed HTTP/1.1 message: start line, headers, whole body.
struct Message {
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Serialises with the hop-by-hop headers replaced by a `Content-Length` and `connection`.
    fn to_bytes(&self, connection: &str) -> (Vec<u8>, usize) {
        let mut head = format!("{}\r\n", self.start);
        for (k, v) in &self.headers {
            let hop = [
                "connection",
                "keep-alive",
                "transfer-encoding",
                "content-length",
            ]
            .iter()
            .any(|h| k.eq_ignore_ascii_case(h));
            if !hop {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        head.push_str(&format!(
            "content-length: {}\r\nconnection: {connection}\r\n\r\n",
            self.body.len()
        ));
        let head_len = head.len();
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        (bytes, head_len)
    }
}

/// Bytes read from a stream but not consumed yet.
struct Reader<S> {
    stream: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + Unpin> Reader<S> {
    fn new(stream: S) -> Self {
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// Reads more; `false` at end of stream or on error.
    async fn fill(&mut self) -> bool {
        let mut piece = [0u8; 16 * 1024];
        match self.stream.read(&mut piece).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&piece[..n]);
                true
            }
        }
    }

    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Some(line);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    async fn exact(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill().await {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    async fn rest(&mut self) -> Vec<u8> {
        while self.fill().await {}
        std::mem::take(&mut self.buf)
    }

    /// One message; `body_until_eof` for answers framed by the end of the connection.
    async fn message(&mut self, body_until_eof: bool) -> Option<Message> {
        let start = self.line().await?;
        let mut headers = Vec::new();
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':')?;
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
        let mut msg = Message {
            start,
            headers,
            body: Vec::new(),
        };
        let chunked = msg
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            loop {
                let size_line = self.line().await?;
                let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
                if size == 0 {
                    // Trailers, up to the empty line.
                    while !self.line().await?.is_empty() {}
                    break;
                }
                let piece = self.exact(size).await?;
                msg.body.extend_from_slice(&piece);
                self.exact(2).await?;
            }
        } else if let Some(len) = msg.header("content-length") {
            let len: usize = len.parse().ok()?;
            msg.body = self.exact(len).await?;
        } else if body_until_eof {
            msg.body = self.rest().await;
        }
        Some(msg)
    }
}

/// Serves one client connection, request after request.
async fn serve(client: TcpStream, shared: Arc<Shared>) {
    let (read, mut write) = client.into_split();
    let mut reader = Reader::new(read);
    while let Some(request) = reader.message(false).await {
        let mut parts = request.start.split(' ');
        let method = parts.next().unwrap_or("").to_owned();
        let path = parts.next().unwrap_or("").to_owned();
        let _in_flight = InFlight::new(&shared.in_flight);
        let fault = shared.decide(&method, &path);
        let response = match fault {
            Some(Fault::Drop) => return,
            Some(Fault::Status(status)) => Message {
                start: format!("HTTP/1.1 {status} Injected"),
                headers: vec![("content-type".into(), "application/json".into())],
                body: br#"{"detail":"injected by the fault proxy"}"#.to_vec(),
            },
            Some(Fault::Delay(pause)) => {
                tokio::time::sleep(pause).await;
                match forward(shared.upstream, &request).await {
                    Some(r) => r,
                    None => return,
                }
            }
            Some(Fault::Corrupt)
            | Some(Fault::DropMidResponse)
            | Some(Fault::SetHeader(..))
            | None => match forward(shared.upstream, &request).await {
                Some(r) => r,
                None => return,
            },
        };
        let mut response = response;
        {
            let hidden = shared.hidden.lock().unwrap();
            response
                .headers
                .retain(|(k, _)| !hidden.iter().any(|h| h.eq_ignore_ascii_case(k)));
        }
        if let Some(Fault::SetHeader(name, value)) = fault {
            response
                .headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case(name));
            response.headers.push((name.to_owned(), value.to_owned()));
        }
        if fault == Some(Fault::Corrupt) && !response.body.is_empty() {
            let mid = response.body.len() / 2;
            response.body[mid] ^= 0xFF;
        }
        let (bytes, head_len) = response.to_bytes("keep-alive");
        if fault == Some(Fault::DropMidResponse) {
            // Cut inside the body when there is one, else inside the head.
            let body_len = bytes.len() - head_len;
            let cut = if body_len > 0 {
                head_len + body_len / 2
            } else {
                head_len / 2
            };
            let _ = write.write_all(&bytes[..cut]).await;
            let _ = write.flush().await;
            return;
        }
        if write.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

/// Sends `request` upstream on a fresh connection and reads the whole answer.
async fn forward(upstream: SocketAddr, request: &Message) -> Option<Message> {
    let mut conn = TcpStream::connect(upstream).await.ok()?;
    let (bytes, _) = request.to_bytes("close");
    conn.write_all(&bytes).await.ok()?;
    let mut reader = Reader::new(conn);
    reader.message(true).await
}
