//! PTC rounds answered and charged once when identical continuations race (ptc.md 5.6, 16):
//! translator-svc in-process, the fake Bedrock, and the real ptc-svc binary on the Docker engine
//! (`cargo build -p ptc-svc`; image `gateway-ptc-sandbox:latest`). Without an engine or binary the
//! tests skip with a notice, and fail when `CI=true`.

use std::time::{Duration, Instant};

use fake_bedrock::Scenario;
use serde_json::{Value, json};

use crate::support::ptc::{BETA, SEEN_CODE, code_turn, final_turn, fold_events};
use crate::support::{PtcSvc, SECRET, Service};

/// A slow network between translator-svc and ptc-svc: a loopback TCP proxy that holds every
/// chunk ptc-svc sends back for `delay` (in order). Requests that reach translator-svc within
/// `delay` of each other then all read the session before any of them delivers (the first's
/// `GetSession` answer is still on its way): the race `racing_identical_...` is about, every time.
struct SlowLink {
    endpoint: String,
    task: tokio::task::JoinHandle<()>,
}

impl SlowLink {
    async fn start(target: &str, delay: Duration) -> Self {
        let target = target.trim_start_matches("http://").to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(&target).await else {
                    continue;
                };
                tokio::spawn(Self::relay(inbound, outbound, delay));
            }
        });
        SlowLink { endpoint, task }
    }

    async fn relay(
        inbound: tokio::net::TcpStream,
        outbound: tokio::net::TcpStream,
        delay: Duration,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut from_client, mut to_client) = inbound.into_split();
        let (mut from_server, mut to_server) = outbound.into_split();
        let upstream = tokio::io::copy(&mut from_client, &mut to_server);
        let (held_tx, mut held_rx) =
            tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
        let read_back = async move {
            let mut buffer = vec![0u8; 64 * 1024];
            while let Ok(n) = from_server.read(&mut buffer).await {
                if n == 0
                    || held_tx
                        .send((tokio::time::Instant::now() + delay, buffer[..n].to_vec()))
                        .is_err()
                {
                    break;
                }
            }
        };
        let write_back = async move {
            while let Some((due, bytes)) = held_rx.recv().await {
                tokio::time::sleep_until(due).await;
                if to_client.write_all(&bytes).await.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::join!(upstream, read_back, write_back);
    }
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// translator-svc in-process, its PTC endpoint on a ptc-svc binary of its own (with a replica id
/// of its own) behind the slow link.
struct Harness {
    service: Service,
    _link: SlowLink,
    _ptc: PtcSvc,
}

impl std::ops::Deref for Harness {
    type Target = Service;

    fn deref(&self) -> &Service {
        &self.service
    }
}

async fn start() -> Option<Harness> {
    let ptc = PtcSvc::start(&[]).await?;
    let link = SlowLink::start(&ptc.endpoint, Duration::from_millis(200)).await;
    let service = Service::start(&[("PTC_ENDPOINT", link.endpoint.as_str())]).await;
    Some(Harness {
        service,
        _link: link,
        _ptc: ptc,
    })
}

/// One SSE event as the client received it, with its arrival time.
struct Received {
    at: Instant,
    event: String,
    data: Value,
}

/// What a client got for one request: its events (a JSON answer is one `message` pseudo-event)
/// and the tokens the response asks Envoy to charge (`x-gw-usage-tokens`, header or trailer).
struct Answered {
    events: Vec<Received>,
    charged: u64,
}

impl Answered {
    /// The message the client ends up with.
    fn message(&self) -> Value {
        if let [only] = self.events.as_slice()
            && only.event == "message"
        {
            return only.data.clone();
        }
        fold(&self.events)
    }

    fn at(&self, event: &str) -> Instant {
        self.events
            .iter()
            .find(|e| e.event == event)
            .unwrap_or_else(|| panic!("no {event} event"))
            .at
    }

    /// True when the stream ended with an `error` event.
    fn failed(&self) -> bool {
        self.events.iter().any(|e| e.event == "error")
    }

    /// The id the stream's `message_start` announced.
    fn started_as(&self) -> Value {
        self.events
            .iter()
            .find(|e| e.event == "message_start")
            .map(|e| e.data["message"]["id"].clone())
            .unwrap_or_else(|| panic!("no message_start"))
    }

    /// True when the stream was committed while the round still ran: its `message_start` came
    /// well before its end (a replay of a finished round sends both at once).
    fn committed_early(&self) -> bool {
        self.events.len() > 1 && self.at("message_stop") - self.at("message_start") > MIN_RUN
    }
}

/// Well under the 1.5 s the code sleeps after receiving its results.
const MIN_RUN: Duration = Duration::from_millis(700);

fn usage_tokens(headers: &http::HeaderMap) -> u64 {
    headers["x-gw-usage-tokens"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

impl Harness {
    fn post(&self, body: &Value) -> reqwest::RequestBuilder {
        self.service
            .post("/v1/messages", body)
            .header("anthropic-beta", BETA)
    }

    async fn json(&self, body: &Value) -> (u16, Value) {
        let response = self.post(body).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// A JSON round answered with 200: its message and the header's token count.
    async fn answered_json(&self, body: &Value) -> Answered {
        let response = self.post(body).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let charged = usage_tokens(response.headers());
        let data: Value = response.json().await.unwrap();
        Answered {
            events: vec![Received {
                at: Instant::now(),
                event: "message".into(),
                data,
            }],
            charged,
        }
    }

    /// An HTTP/2 connection to the service (the usage trailer needs HTTP/2), opened ahead so
    /// requests sent together on several of them reach the service together.
    async fn connect(&self) -> H2 {
        let tcp = tokio::net::TcpStream::connect(self.running.addr)
            .await
            .unwrap();
        let (sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        sender
    }

    /// A streaming round on `sender`, its events read as they arrive, then its trailers.
    async fn answered_stream(&self, mut sender: H2, body: &Value) -> Answered {
        use http_body_util::{BodyExt, Full};
        let request = http::Request::post(self.url("/v1/messages"))
            .header("x-gw-internal-secret", SECRET)
            .header("anthropic-beta", BETA)
            .header("content-type", "application/json")
            .body(Full::new(bytes::Bytes::from(body.to_string())))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let mut events = Vec::new();
        let mut buffer = String::new();
        let mut trailers = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.unwrap();
            if let Some(t) = frame.trailers_ref() {
                trailers = Some(t.clone());
                continue;
            }
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buffer.push_str(std::str::from_utf8(&data).unwrap());
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    frame
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .unwrap_or_else(|| panic!("no {name} in {frame:?}"))
                        .to_string()
                };
                events.push(Received {
                    at: Instant::now(),
                    event: field("event: "),
                    data: serde_json::from_str(&field("data: ")).unwrap(),
                });
            }
        }
        let trailers = trailers.expect("the usage trailer");
        Answered {
            events,
            charged: usage_tokens(&trailers),
        }
    }
}

/// The message a stream describes.
fn fold(events: &[Received]) -> Value {
    fold_events(events.iter().map(|e| &e.data))
}

type H2 = hyper::client::conn::http2::SendRequest<http_body_util::Full<bytes::Bytes>>;

fn tools() -> Value {
    json!([
        {"type": "code_execution_20250825", "name": "code_execution"},
        {"name": "get_item", "description": "Reads one item by id.",
         "input_schema": {"type": "object", "properties": {"item_id": {"type": "string"}}, "required": ["item_id"]},
         "allowed_callers": ["code_execution_20250825"]}
    ])
}

fn request(messages: &[Value], container: Option<&Value>, stream: bool) -> Value {
    let mut body = json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": stream,
        "tools": tools(), "messages": messages});
    if let Some(container) = container {
        body["container"] = container.clone();
    }
    body
}

/// Round 1 (JSON, a new container): the code pauses on one call. Returns the messages answering
/// it and the container.
async fn paused_on_one_call(h: &Harness, code_id: &str) -> (Vec<Value>, Value) {
    h.fake.enqueue(code_turn(code_id, SEEN_CODE));
    let mut messages = vec![json!({"role": "user", "content": "Read a."})];
    let (status, b) = h.json(&request(&messages, None, false)).await;
    assert_eq!(status, 200, "{b}");
    let call = b["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|block| block["type"] == "tool_use")
        .cloned()
        .unwrap_or_else(|| panic!("no sandbox call in {b}"));
    messages.push(json!({"role": "assistant", "content": b["content"]}));
    messages.push(json!({"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": call["id"], "content": "A"}]}));
    (messages, b["container"]["id"].clone())
}

/// What a new task in the container reads back from `seen.txt`.
async fn seen_by_the_code(h: &Harness, container: &Value) -> String {
    h.fake.enqueue(code_turn(
        "toolu_bdrk_09Read",
        "print(open('/workspace/seen.txt').read(), end='')",
    ));
    h.fake.enqueue(final_turn("Read."));
    let body = request(
        &[json!({"role": "user", "content": "Show seen."})],
        Some(container),
        false,
    );
    let (status, r) = h.json(&body).await;
    assert_eq!(status, 200, "{r}");
    r["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "code_execution_tool_result")
        .map(|b| b["content"]["stdout"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no code result in {r}"))
}

/// Tokens a response charges, as `x-gw-usage-tokens` counts them.
fn charged(usage: &Value) -> u64 {
    [
        "input_tokens",
        "cache_creation_input_tokens",
        "output_tokens",
    ]
    .iter()
    .map(|k| usage[*k].as_u64().unwrap_or(0))
    .sum()
}

/// Section 5.6: identical continuations sent at once, four streaming and one JSON. They pass
/// validation together (the slow link to ptc-svc holds the first one's `GetSession` answer while
/// the others read the session too: all see the batch still paused, all streams commit before
/// delivering), ptc-svc runs the round for the first delivery only and the others wait for its
/// stored response. Every client gets that one response, under the same message id (the streams'
/// `message_start` included), the results reach the code once, the model is called once, and the
/// round's tokens are charged once across the five responses (ptc.md 16).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_identical_continuations_get_one_response_under_one_id_charged_once() {
    const TRIALS: usize = 3;
    const STREAMS: usize = 4;
    let Some(h) = start().await else { return };
    let mut raced = false;
    for trial in 0..TRIALS {
        let code_id = format!("toolu_bdrk_0{trial}Race");
        let (messages, container) = paused_on_one_call(&h, &code_id).await;
        h.fake.enqueue(final_turn("It was A."));
        let model_calls = h.fake.requests().len();
        let streaming = request(&messages, Some(&container), true);
        let json_body = request(&messages, Some(&container), false);
        let mut connections = Vec::new();
        for _ in 0..STREAMS {
            connections.push(h.connect().await);
        }
        let streams = connections
            .into_iter()
            .map(|sender| h.answered_stream(sender, &streaming));
        let (streams, json) = tokio::join!(
            futures::future::join_all(streams),
            h.answered_json(&json_body)
        );
        let answers: Vec<&Answered> = streams.iter().chain([&json]).collect();

        let round = streams[0].message();
        assert_eq!(round["stop_reason"], "end_turn", "{round}");
        assert_eq!(
            round["content"][0]["content"]["stdout"], "got A\n",
            "{round}"
        );
        assert_eq!(round["content"][1]["text"], "It was A.", "{round}");
        for answer in &answers {
            let message = answer.message();
            // One id, also in the streams' `message_start` (sent before the round was over).
            assert_eq!(message["id"], round["id"], "trial {trial}");
            for field in ["content", "stop_reason", "usage", "container"] {
                assert_eq!(message[field], round[field], "trial {trial}: {field}");
            }
        }
        assert_eq!(
            h.fake.requests().len(),
            model_calls + 1,
            "trial {trial}: the model is called once for the round"
        );
        let total: u64 = answers.iter().map(|a| a.charged).sum();
        assert_eq!(
            total,
            charged(&round["usage"]),
            "trial {trial}: the round is charged once, by the request that served it"
        );
        assert!(total > 0);

        // Did two of them pass validation together (the race this test is about)? A stream
        // committed while the round ran did; one that waited for the stored round did not.
        let streams_committed_early = streams.iter().filter(|a| a.committed_early()).count();
        eprintln!("trial {trial}: {streams_committed_early} streams committed while the round ran");
        if streams_committed_early >= 2 {
            assert_eq!(seen_by_the_code(&h, &container).await, "A\n");
            raced = true;
            break;
        }
    }
    assert!(
        raced,
        "two identical continuations never passed validation together in {TRIALS} trials"
    );
}

/// Section 5.6 when the first of two racing duplicates fails: its model call after the code is
/// refused, so it answers with an `error` event and releases the round. The duplicate waiting
/// for it takes the round over from the delivery's outcome (the code does not run again), calls
/// the model and answers the round, under the id both streams announced, as a retry arriving
/// while the first ran would have. A later retry replays that answer and charges nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_racing_duplicate_takes_the_round_over_when_the_first_fails() {
    let Some(h) = start().await else { return };
    let (messages, container) = paused_on_one_call(&h, "toolu_bdrk_01Lost").await;
    h.fake.enqueue(Scenario {
        on_tool_result: true,
        ..Scenario::error("ValidationException", "the model refused")
    });
    h.fake.enqueue(final_turn("Taken over: A."));
    let model_calls = h.fake.requests().len();
    let streaming = request(&messages, Some(&container), true);
    let (first, second) = (h.connect().await, h.connect().await);
    let (first, second) = tokio::join!(
        h.answered_stream(first, &streaming),
        h.answered_stream(second, &streaming)
    );
    let (failed, answered) = match (first.failed(), second.failed()) {
        (true, false) => (first, second),
        (false, true) => (second, first),
        (a, b) => panic!("one of the two should fail, not {a} and {b}"),
    };
    // It committed at validation, alongside the first: not a retry that came after.
    assert!(answered.committed_early());
    let round = answered.message();
    assert_eq!(round["stop_reason"], "end_turn", "{round}");
    assert_eq!(
        round["content"][0]["content"]["stdout"], "got A\n",
        "{round}"
    );
    assert_eq!(round["content"][1]["text"], "Taken over: A.", "{round}");
    assert_eq!(failed.started_as(), round["id"], "one round, one id");
    assert_eq!(h.fake.requests().len(), model_calls + 2);
    // Charged once: the refused call cost nothing, the answered round its usage.
    assert_eq!(failed.charged + answered.charged, charged(&round["usage"]));

    let retry = h
        .answered_json(&request(&messages, Some(&container), false))
        .await;
    assert_eq!(retry.message(), round);
    assert_eq!(retry.charged, 0);
    assert_eq!(h.fake.requests().len(), model_calls + 2);
    assert_eq!(seen_by_the_code(&h, &container).await, "A\n");
}
