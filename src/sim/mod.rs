//! The simulator: a local HTTP server that speaks every provider's API from one seed.
//!
//! Tests, benches and the demo sync against it instead of a real provider. Each provider has
//! its own module (routes, auth, its JSON) and its own data set, generated from the same
//! seed, counts and anchor (`Datasets`). It is started from an already-bound listener (tests
//! bind `127.0.0.1:0`, so there are no port races), serves until its shutdown future
//! resolves, and exposes hooks (`Simulator`) to change the data while it runs: add calls,
//! finish unfinished calls late, delete calls as someone else would (tombstones), switch the
//! sort order, churn for a number of list requests, serve a call without its id, and read back
//! every call it would serve, the list answers it gave (truncated or whole), every DELETE it
//! received and every request with the fault it met. `SimServer` runs one on a thread of its own, for
//! synchronous tests. It never listens beyond the address it is given.

pub mod bluejay;
pub mod cartesia;
pub mod clarion;
pub mod data;
pub mod faults;
pub mod ultravox;

use axum::serve::ListenerExt;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

pub use data::{BusyDay, Dataset, IdStyle};

use crate::providers::ProviderKind;
pub use faults::{Churn, FaultConfig, FaultKind, RequestRecord};

use rand::rngs::SmallRng;
use rand::SeedableRng;

/// The key the simulator accepts unless told otherwise.
pub const DEFAULT_SIM_KEY: &str = "sim-key";

/// The order list endpoints serve calls in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SortOrder {
    NewestFirst,
    OldestFirst,
}

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub calls: u64,
    pub agents: u32,
    pub seed: u64,
    /// Added to every response.
    pub latency: Duration,
    pub order: SortOrder,
    pub api_key: String,
    /// The time the generated calls lead up to; now, unless a test pins it.
    pub anchor: Option<DateTime<Utc>>,
    pub faults: FaultConfig,
    pub churn: Churn,
    /// Calls packed into one day of Clarion's data set (`clarion::BUSY_DAY_BEFORE_ANCHOR`
    /// days before the anchor), on top of `calls`: more than one of its list answers holds.
    pub clarion_busy_day: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            calls: 1_000,
            agents: 2,
            seed: 1,
            latency: Duration::ZERO,
            order: SortOrder::NewestFirst,
            api_key: DEFAULT_SIM_KEY.into(),
            anchor: None,
            faults: FaultConfig::default(),
            churn: Churn::default(),
            clarion_busy_day: clarion::DEFAULT_BUSY_DAY_CALLS,
        }
    }
}

/// One data set per provider, all from one seed (salted per provider, Bluejay's unsalted).
pub struct Datasets([Dataset; 4]);

impl Datasets {
    fn new(config: &SimConfig, anchor: DateTime<Utc>) -> Datasets {
        let make = |kind: ProviderKind| {
            let (salt, ids) = match kind {
                ProviderKind::Bluejay => (0, IdStyle::Uuid),
                ProviderKind::Cartesia => (0xCA57, IdStyle::Prefixed("ac_")),
                ProviderKind::Clarion => (0xC1A1, IdStyle::Integer),
                ProviderKind::Ultravox => (0x017A, IdStyle::UuidOnly),
            };
            let busy =
                (kind == ProviderKind::Clarion && config.clarion_busy_day > 0).then_some(BusyDay {
                    days_before_anchor: clarion::BUSY_DAY_BEFORE_ANCHOR,
                    calls: config.clarion_busy_day,
                });
            Dataset::with_busy_day(
                config.seed ^ salt,
                config.calls,
                config.agents,
                anchor,
                ids,
                busy,
            )
        };
        Datasets(ProviderKind::ALL.map(make))
    }

    pub fn get(&self, kind: ProviderKind) -> &Dataset {
        &self.0[kind as usize]
    }

    pub fn get_mut(&mut self, kind: ProviderKind) -> &mut Dataset {
        &mut self.0[kind as usize]
    }
}

/// A call as `kind`'s API serves it by id.
fn render_json(
    kind: ProviderKind,
    renderer: &data::Renderer,
    slot: data::CallSlot,
) -> serde_json::Value {
    let value = match kind {
        ProviderKind::Bluejay => serde_json::to_value(bluejay::render(renderer, slot)),
        ProviderKind::Cartesia => Ok(cartesia::render(renderer, slot, true)),
        ProviderKind::Clarion => Ok(clarion::render(renderer, slot)),
        ProviderKind::Ultravox => Ok(ultravox::render(renderer, slot)),
    };
    value.unwrap_or_default()
}

/// Whether `kind` would call a call unfinished (late evaluations, completion by id).
fn is_pending(kind: ProviderKind, renderer: &data::Renderer, slot: data::CallSlot) -> bool {
    match kind {
        ProviderKind::Bluejay => bluejay::render(renderer, slot).evaluations.is_empty(),
        ProviderKind::Cartesia => cartesia::is_started(renderer, slot),
        ProviderKind::Clarion => clarion::is_unfinished(renderer, slot),
        ProviderKind::Ultravox => ultravox::is_unfinished(renderer, slot),
    }
}

/// An error answer in the shape of the provider that owns `path`: Cartesia's own, else
/// `{"detail": message}` (Bluejay's FastAPI and Ultravox's Django REST Framework alike).
fn error_response(
    path: &str,
    status: axum::http::StatusCode,
    message: &str,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if path.starts_with("/agents") {
        let code =
            (status == axum::http::StatusCode::TOO_MANY_REQUESTS).then_some("concurrency_limited");
        return cartesia::error(status, code, message);
    }
    if clarion::owns(path) {
        return clarion::error(status, message);
    }
    (status, axum::Json(serde_json::json!({ "detail": message }))).into_response()
}

/// A list request the simulator answered: how many calls it asked for, how many matched its
/// filters and how many were served (fewer than matched: the answer was truncated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListAnswer {
    pub provider: &'static str,
    /// The query string as received.
    pub query: String,
    pub limit: usize,
    pub matched: usize,
    pub served: usize,
}

/// A DELETE the simulator received, as it received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteRecord {
    pub provider: &'static str,
    pub call_id: String,
    pub recording_only: bool,
    pub status: u16,
}

struct SimState {
    data: Datasets,
    order: SortOrder,
    latency: Duration,
    api_key: String,
    deletes: Vec<DeleteRecord>,
    lists: Vec<ListAnswer>,
    /// Clarion answers a DELETE with 200 and the deleted call instead of an empty 204.
    clarion_delete_body: bool,
    requests: u64,
    /// When each request arrived, for checking clients' rate limits.
    request_times: Vec<std::time::Instant>,
    faults: FaultConfig,
    faults_served: u64,
    /// Every request as it arrived, with the fault it met (`faults::inject` records them).
    request_log: Vec<faults::RequestRecord>,
    /// Call ids the answers leave out wherever they appear (`serve_without_id`).
    hidden_ids: Vec<String>,
    churn: Churn,
    /// List requests churn still strikes; `None`: every one.
    churn_lists_left: Option<u32>,
    churned_in: Vec<String>,
    churned_out: Vec<String>,
    rng: SmallRng,
}

/// A handle on a running simulator's data; cheap to clone.
#[derive(Clone)]
pub struct Simulator {
    state: Arc<Mutex<SimState>>,
}

impl Simulator {
    pub fn new(config: &SimConfig) -> Simulator {
        let anchor = config.anchor.unwrap_or_else(Utc::now);
        Simulator {
            state: Arc::new(Mutex::new(SimState {
                data: Datasets::new(config, anchor),
                order: config.order,
                latency: config.latency,
                api_key: config.api_key.clone(),
                deletes: Vec::new(),
                lists: Vec::new(),
                clarion_delete_body: false,
                requests: 0,
                request_times: Vec::new(),
                faults: config.faults.clone(),
                faults_served: 0,
                request_log: Vec::new(),
                hidden_ids: Vec::new(),
                churn: config.churn,
                churn_lists_left: None,
                churned_in: Vec::new(),
                churned_out: Vec::new(),
                rng: SmallRng::seed_from_u64(config.seed ^ 0xFA17),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic while holding the lock leaves the data usable; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bluejay's agents.
    pub fn agents(&self) -> Vec<String> {
        self.agents_of(ProviderKind::Bluejay)
    }

    pub fn agents_of(&self, kind: ProviderKind) -> Vec<String> {
        self.lock().data.get(kind).agents().to_vec()
    }

    pub fn set_order(&self, order: SortOrder) {
        self.lock().order = order;
    }

    /// Adds `n` Bluejay calls, created now, to the agent at `agent_index`; returns their ids.
    pub fn add_calls(&self, agent_index: usize, n: u32) -> Vec<String> {
        self.add_calls_of(ProviderKind::Bluejay, agent_index, n)
    }

    pub fn add_calls_of(&self, kind: ProviderKind, agent_index: usize, n: u32) -> Vec<String> {
        let index = u16::try_from(agent_index).unwrap_or(u16::MAX);
        self.lock()
            .data
            .get_mut(kind)
            .add_calls(index, n, Utc::now())
    }

    /// Gives up to `n` Bluejay calls without an evaluation one, newest first, among the calls
    /// created in `created`. Returns their ids.
    pub fn complete_pending(&self, n: usize, created: Range<DateTime<Utc>>) -> Vec<String> {
        self.complete_pending_of(ProviderKind::Bluejay, n, created)
    }

    /// Finishes up to `n` of `kind`'s unfinished calls created in `created`, newest first:
    /// a Bluejay call gets its evaluation, a Cartesia call completes (seen only by id).
    pub fn complete_pending_of(
        &self,
        kind: ProviderKind,
        n: usize,
        created: Range<DateTime<Utc>>,
    ) -> Vec<String> {
        let range = created.start.timestamp_millis()..created.end.timestamp_millis();
        self.lock()
            .data
            .get_mut(kind)
            .complete_pending(n, range, Utc::now(), |r, s| is_pending(kind, r, s))
    }

    /// Every Bluejay call the simulator would serve now, as JSON, oldest first.
    pub fn calls_json(&self) -> Vec<serde_json::Value> {
        self.calls_json_of(ProviderKind::Bluejay)
    }

    /// Every call of `kind` the simulator would serve now by id, as JSON, oldest first.
    pub fn calls_json_of(&self, kind: ProviderKind) -> Vec<serde_json::Value> {
        let (slots, renderer) = {
            let mut state = self.lock();
            let data = state.data.get_mut(kind);
            (data.all_live(), data.renderer())
        };
        slots
            .into_iter()
            .map(|s| render_json(kind, &renderer, s))
            .collect()
    }

    /// Every DELETE received so far.
    pub fn deletes(&self) -> Vec<DeleteRecord> {
        self.lock().deletes.clone()
    }

    /// The list requests answered so far, where a provider module records them (Clarion).
    pub fn list_answers(&self) -> Vec<ListAnswer> {
        self.lock().lists.clone()
    }

    /// Makes Clarion's DELETE answer 200 with the deleted call (`true`) or 204 with no body
    /// (`false`, the default): its documentation promises the one and declares the other.
    pub fn set_clarion_delete_body(&self, with_body: bool) {
        self.lock().clarion_delete_body = with_body;
    }

    /// Requests served so far, all endpoints.
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    /// When each request arrived.
    pub fn request_times(&self) -> Vec<std::time::Instant> {
        self.lock().request_times.clone()
    }

    pub fn set_faults(&self, faults: FaultConfig) {
        self.lock().faults = faults;
    }

    /// Requests that met a fault so far.
    pub fn faults_served(&self) -> u64 {
        self.lock().faults_served
    }

    /// Every request so far, faulted or not, in the order they arrived.
    pub fn request_log(&self) -> Vec<faults::RequestRecord> {
        self.lock().request_log.clone()
    }

    /// From now on, every answer that holds the call `id` serves it without its id: each
    /// JSON member whose value is the id (a string, or a number for integer ids) is left
    /// out. A provider's bad record, for proving a client refuses it without losing anything.
    pub fn serve_without_id(&self, id: &str) {
        self.lock().hidden_ids.push(id.to_string());
    }

    pub fn set_churn(&self, churn: Churn) {
        let mut state = self.lock();
        state.churn = churn;
        state.churn_lists_left = None;
    }

    /// Applies `churn` to the next `lists` list requests only, then stops: a walk that drifts
    /// a bounded number of times, so a sync under churn ends settled.
    pub fn churn_for(&self, churn: Churn, lists: u32) {
        let mut state = self.lock();
        state.churn = churn;
        state.churn_lists_left = Some(lists);
    }

    /// The ids churn inserted and deleted so far.
    pub fn churned(&self) -> (Vec<String>, Vec<String>) {
        let state = self.lock();
        (state.churned_in.clone(), state.churned_out.clone())
    }

    /// Applies churn to the calls of `kind` a list request walks, as it arrives: one agent's,
    /// or (`None`) the whole account's, whose inserted call goes to an agent picked at random.
    fn churn(&self, kind: ProviderKind, agent: Option<u16>) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let churn = state.churn;
        match &mut state.churn_lists_left {
            Some(0) => return,
            Some(left) => *left -= 1,
            None => {}
        }
        if churn.insert_chance > 0.0 && state.rng.random_bool(churn.insert_chance.min(1.0)) {
            let agents = state.data.get(kind).agents().len().max(1);
            let to = agent.unwrap_or_else(|| state.rng.random_range(0..agents) as u16);
            let ids = state.data.get_mut(kind).add_calls(to, 1, Utc::now());
            state.churned_in.extend(ids);
        }
        if churn.delete_chance > 0.0 && state.rng.random_bool(churn.delete_chance.min(1.0)) {
            let pick = state.rng.random::<u64>();
            if let Some(id) = state.data.get_mut(kind).delete_any(agent, pick) {
                state.churned_out.push(id);
            }
        }
    }

    /// Deletes up to `n` live calls of `kind` at the provider, of any agent and any age, as
    /// someone else would (they become tombstones); returns their ids.
    pub fn delete_upstream(&self, kind: ProviderKind, n: usize) -> Vec<String> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            let pick = state.rng.random::<u64>();
            match state.data.get_mut(kind).delete_any(None, pick) {
                Some(id) => ids.push(id),
                None => break,
            }
        }
        ids
    }

    fn authorized(&self, headers: &axum::http::HeaderMap, header: &str) -> bool {
        let state = self.lock();
        headers
            .get(header)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == state.api_key)
    }

    /// A live call of `kind` by id, with what renders it; the lock is released before
    /// rendering.
    fn find_call(&self, kind: ProviderKind, id: &str) -> Option<(data::CallSlot, data::Renderer)> {
        let state = self.lock();
        let data = state.data.get(kind);
        data.slot_of(id).map(|slot| (slot, data.renderer()))
    }

    /// Whether `Authorization: Bearer <key>` holds the key.
    fn authorized_bearer(&self, headers: &axum::http::HeaderMap) -> bool {
        let state = self.lock();
        headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|v| v == state.api_key)
    }

    /// Counts a request and waits out the configured latency, measured from its arrival.
    ///
    /// tokio's timer fires on the millisecond tick after a deadline, which made a 20 ms
    /// latency about 22 ms (and a zero one about 1 ms), so latency-bound figures read low.
    /// A thread of the blocking pool sleeps to within tens of microseconds.
    async fn begin_request(&self) {
        let arrived = std::time::Instant::now();
        let latency = {
            let mut state = self.lock();
            state.requests += 1;
            state.request_times.push(arrived);
            state.latency
        };
        if latency.is_zero() {
            return;
        }
        let deadline = arrived + latency;
        let slept = tokio::task::spawn_blocking(move || {
            std::thread::sleep(deadline.saturating_duration_since(std::time::Instant::now()));
        })
        .await;
        if slept.is_err() {
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

fn router(sim: Simulator) -> axum::Router {
    bluejay::routes()
        .merge(cartesia::routes())
        .merge(clarion::routes())
        .merge(ultravox::routes())
        .layer(axum::middleware::from_fn_with_state(
            sim.clone(),
            faults::inject,
        ))
        .with_state(sim)
}

/// Serves `sim` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    sim: Simulator,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Small JSON answers must not wait for Nagle's algorithm to meet the client's delayed ACK.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(sim))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A simulator on a thread of its own, listening on 127.0.0.1 at a free port.
pub struct SimServer {
    pub sim: Simulator,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SimServer {
    pub fn start(config: SimConfig) -> std::io::Result<SimServer> {
        let sim = Simulator::new(&config);
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = sim.clone();
        let thread = std::thread::Builder::new()
            .name("callvault-sim".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(std_listener) {
                        Ok(listener) => {
                            let shutdown = async move {
                                let _ = stopped.await;
                            };
                            if let Err(e) = serve(listener, served, shutdown).await {
                                tracing::error!("simulator stopped: {e}");
                            }
                        }
                        Err(e) => tracing::error!("simulator could not listen: {e}"),
                    }
                })
            })?;
        Ok(SimServer {
            sim,
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
