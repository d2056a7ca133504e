//! Local delivery: our qmail-lspawn + qmail-local.
//!
//! For each local recipient `L@D` (after virtualdomains prepending), the user is resolved
//! with mta-dotqmail's [`UserTable`](mta_dotqmail::UserTable) (users/assign first, then the alias user, whose home
//! is `DIR/alias`), and the `.qmail` interpreter runs.
//!
//! - When `mta serve` is **not root**, the interpreter runs in the delivery thread itself:
//!   no fork per delivery.
//! - When it **is root** (the queue process runs as the queue account, started by a root
//!   master), every delivery runs in a worker process that has the target user's uid and
//!   gid and no supplementary groups (`mta local-worker`), which lspawn
//!   ([`crate::lspawn`]) starts on request, as qmail-lspawn ran qmail-local; lspawn refuses
//!   uid 0, gid 0 and the daemon's own accounts with a deferral. Workers are kept per (uid,
//!   gid) and reused, so a list of 8,192 recipients does not cost 8,192 process starts. The
//!   worker gets the message bytes and the delivery parameters as one length-prefixed frame
//!   ([`mta_core::frame`]) on its connection and answers with the result; it never touches
//!   the queue.
//!
//! Forwards (`&addr` lines) come back to the daemon, which queues them as one new message
//! (the `Delivered-To:` line + the original message) from NEWSENDER and wakes the scheduler.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use crossbeam_channel::Sender;
use mta_core::{Address, DeliveryResult, Envelope};
use mta_dotqmail::{
    Account, AddressCheck, BaseEnvironment, DeliveryOptions, DeliveryRequest, Forward, LocalUser,
    MaildirCommit, Message, Resolved, SystemExecutor, check_address, deliver,
};
use mta_queue::{MessageId, Queue};

use crate::sched::{Input, Job};
use mta_core::frame;
use mta_dotqmail::worker::{self, Answer, SyncAnswer, WorkerRequest};

/// What an SMTP-time recipient check found (no backscatter: unknown users are refused at
/// RCPT with the same lookup delivery uses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RcptCheck {
    /// A user and a `.qmail` (or the default delivery) would take it.
    Exists,
    /// Nobody would: qmail-local would bounce it with `#5.1.1`.
    Unknown,
    /// The lookup failed temporarily (answer 451).
    TryLater(String),
}

/// The RCPT-time check for a local address `L@D`: the user lookup and `.qmail` search local
/// delivery would do (mta-dotqmail's `check_address`), without delivering.
pub fn check(
    users: &crate::users::Users,
    cache: &crate::lookup::LookupCache,
    recipient: &Address,
) -> RcptCheck {
    let table = users.table();
    let mut fs = cache.lookup();
    match check_address(
        &table,
        &mut fs,
        recipient.local_part(),
        &DeliveryOptions::default(),
    ) {
        Ok(AddressCheck::NotFound { .. }) => RcptCheck::Unknown,
        Ok(_) => RcptCheck::Exists,
        Err(e) => RcptCheck::TryLater(e.to_string()),
    }
}

/// The environment programs get before the qmail variables: a fixed, small one (every
/// value a delivery adds is attacker-controlled; see the Shellshock note in the reference):
/// `PATH` with `DIR/bin` first and `MTA_ROOT` ([`crate::helpers::program_env`]).
fn base_env() -> BaseEnvironment {
    BaseEnvironment::Fixed(crate::helpers::program_env())
}

/// Runs local deliveries.
pub struct LocalDelivery {
    users: Arc<crate::users::Users>,
    options: DeliveryOptions,
    default_delivery: RwLock<Arc<Vec<u8>>>,
    queue: Arc<Queue>,
    scheduler: Sender<Input>,
    privileged: Option<Workers>,
    /// `timeoutlocal`: how long a `.qmail` program may run.
    program_timeout: Duration,
    /// Bounds the batches delivered at once ([`LOCAL_BATCHES_IN_FLIGHT`]).
    in_flight: crate::pool::Gate,
}

impl std::fmt::Debug for LocalDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalDelivery")
            .field("privileged", &self.privileged.is_some())
            .finish_non_exhaustive()
    }
}

impl LocalDelivery {
    /// A local delivery service. `lspawn` is `Some` when the server was started as root
    /// (deliveries go through per-user worker processes lspawn starts), `None` otherwise.
    pub fn new(
        users: Arc<crate::users::Users>,
        default_delivery: Vec<u8>,
        queue: Arc<Queue>,
        scheduler: Sender<Input>,
        lspawn: Option<crate::lspawn::Client>,
    ) -> LocalDelivery {
        LocalDelivery {
            users,
            options: DeliveryOptions::default(),
            default_delivery: RwLock::new(Arc::new(default_delivery)),
            queue,
            scheduler,
            privileged: lspawn.map(|lspawn| Workers {
                lspawn,
                idle: Mutex::new(HashMap::new()),
                program_timeout: DEFAULT_PROGRAM_TIMEOUT,
            }),
            program_timeout: DEFAULT_PROGRAM_TIMEOUT,
            in_flight: crate::pool::Gate::new(LOCAL_BATCHES_IN_FLIGHT),
        }
    }

    /// Sets `timeoutlocal`: a `.qmail` program still running after `limit` is killed with
    /// its process group and the delivery deferred.
    #[must_use]
    pub fn with_program_timeout(mut self, limit: Duration) -> LocalDelivery {
        self.program_timeout = limit;
        if let Some(w) = self.privileged.as_mut() {
            w.program_timeout = limit;
        }
        self
    }
}

/// `timeoutlocal`'s default (design.md "Limits").
const DEFAULT_PROGRAM_TIMEOUT: Duration = Duration::from_hours(1);

/// The environment variable that carries `timeoutlocal` (seconds) to a worker process.
const TIMEOUT_ENV: &str = crate::lspawn::TIMEOUT_ENV;

impl crate::pool::Deliver for LocalDelivery {
    /// Delivers a job (one result per target); forwards are queued here. The message is
    /// read once for all targets.
    fn deliver(&self, job: &Job) -> Vec<DeliveryResult> {
        self.deliver_batch(std::slice::from_ref(job))
            .pop()
            .unwrap_or_default()
    }

    fn batch_limit(&self) -> usize {
        LOCAL_BATCH
    }

    fn batches_in_flight(&self) -> Option<&crate::pool::Gate> {
        Some(&self.in_flight)
    }

    /// Delivers several jobs together: their deliveries for one (uid, gid) go to one
    /// worker in one frame, whose maildir lines are made durable together (two `syncfs`
    /// calls per frame, not two fsyncs per line).
    fn deliver_batch(&self, jobs: &[Job]) -> Vec<Vec<DeliveryResult>> {
        let now = crate::log::unix_now();
        let table = self.users.table();
        let default_delivery = self.default_delivery();
        let messages: Vec<Result<Vec<u8>, String>> = jobs
            .iter()
            .map(|job| self.read_message(job.id).map_err(|e| e.to_string()))
            .collect();
        let mut results: Vec<Vec<Option<DeliveryResult>>> = jobs
            .iter()
            .map(|job| vec![None; job.targets.len()])
            .collect();
        // (job, target, user) for every target that resolved to a user.
        let mut users: Vec<(usize, usize, LocalUser)> = Vec::new();
        for (j, job) in jobs.iter().enumerate() {
            if let Err(e) = &messages[j] {
                let failed = DeliveryResult::Deferred {
                    text: format!("Unable to read message: {e}. (#4.3.0)"),
                    status: None,
                };
                results[j].fill(Some(failed));
                continue;
            }
            for (i, t) in job.targets.iter().enumerate() {
                match table.resolve(t.address.local_part()) {
                    Ok(Resolved::User(u)) => users.push((j, i, u)),
                    // qmail-lspawn: an empty local part is trash, delivered to nobody.
                    Ok(_) => {
                        results[j][i] = Some(DeliveryResult::Delivered {
                            text: "did 0+0+0\n".into(),
                        });
                    }
                    Err(e) => {
                        results[j][i] = Some(DeliveryResult::Deferred {
                            text: e.report(),
                            status: None,
                        });
                    }
                }
            }
        }
        let requests: Vec<Request<'_>> = users
            .iter()
            .map(|(j, i, user)| {
                let job = &jobs[*j];
                let address = &job.targets[*i].address;
                let request = DeliveryRequest {
                    user,
                    local: address.local_part(),
                    domain: address.domain().unwrap_or_default(),
                    sender: job.sender.as_bytes(),
                    default_delivery: &default_delivery,
                    now,
                };
                let message = messages[*j].as_deref().unwrap_or_default();
                (*j, message, request)
            })
            .collect();
        let answers: Vec<Answer> = match &self.privileged {
            None => run_requests(
                requests.iter().map(|(_, m, r)| (*m, r)),
                &self.options,
                self.program_timeout,
                &mut |device| queue_sync(&self.queue, device),
            ),
            Some(workers) => workers.run_all(&requests, &self.queue),
        };
        for ((j, i, user), (result, forward)) in users.iter().zip(answers) {
            results[*j][*i] = Some(match forward {
                Some(fwd) if result.is_delivered() => {
                    let message = messages[*j].as_deref().unwrap_or_default();
                    self.forward(fwd, message, result, forwarder(Some(user)))
                }
                _ => result,
            });
        }
        results
            .into_iter()
            .map(|job| {
                job.into_iter()
                    .map(|r| {
                        r.unwrap_or_else(|| DeliveryResult::Deferred {
                            text: "Internal error: no delivery result. (#4.3.0)".into(),
                            status: None,
                        })
                    })
                    .collect()
            })
            .collect()
    }
}

/// Most jobs one local delivery thread takes at once (a frame's staged deliveries hold
/// three descriptors each until the commit).
const LOCAL_BATCH: usize = 32;

/// Local batches delivered at once: each needs two file-system syncs whatever its size, so
/// while these run, the jobs that arrive gather into the next batch; few, so batches are
/// not one job each. With the maildirs on the queue's disk a batch's syncs ride the queue's
/// commit rounds ([`queue_sync`]), so several batches in flight share flushes instead of
/// adding them: 4 measured 6% faster end to end on W1 and 28% on W2 than 2, with the same
/// flushes per message (BENCHMARKS.md, issue 22).
const LOCAL_BATCHES_IN_FLIGHT: usize = 4;

/// One delivery of a batch: the job's position, its message, the request.
type Request<'a> = (usize, &'a [u8], DeliveryRequest<'a>);

impl LocalDelivery {
    /// Replaces the delivery for users without a `.qmail` (SIGHUP rereads
    /// `control/defaultdelivery`); deliveries under way keep the text they started with.
    pub fn set_default_delivery(&self, text: Vec<u8>) {
        *self
            .default_delivery
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(text);
    }

    fn default_delivery(&self) -> Arc<Vec<u8>> {
        Arc::clone(
            &self
                .default_delivery
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    fn read_message(&self, id: MessageId) -> io::Result<Vec<u8>> {
        let mut r = self.queue.open_message(id).map_err(io::Error::other)?;
        // Sized up front: one pread for the whole message, not a doubling series of them.
        let mut v = Vec::with_capacity(usize::try_from(r.len()).unwrap_or(0));
        r.read_to_end(&mut v)?;
        Ok(v)
    }

    /// Queues the forward (qmail-local's `mailforward`): DTLINE + the original message.
    fn forward(
        &self,
        fwd: Forward,
        message: &[u8],
        result: DeliveryResult,
        invoker: mta_core::header::QueueInvoker,
    ) -> DeliveryResult {
        let env = Envelope::new(
            Address::from_bytes(fwd.sender),
            fwd.recipients.into_iter().map(Address::from_bytes),
        );
        // The trace line's qp is the forward's own id, as the report's `qp N` says.
        let queued = self.queue.begin().and_then(|mut incoming| {
            incoming.write(&mta_core::header::received_queue(
                incoming.id().as_u64(),
                invoker,
                crate::log::unix_now(),
            ))?;
            incoming.write(&fwd.dtline)?;
            incoming.write(message)?;
            incoming.commit(&env)
        });
        match queued {
            Ok(id) => {
                // The scheduler may be gone at shutdown; it rescans the queue on start.
                let _ = self.scheduler.send(Input::New(id));
                match result {
                    DeliveryResult::Delivered { mut text } => {
                        let _ = writeln!(text, "qp {id}");
                        DeliveryResult::Delivered { text }
                    }
                    other => other,
                }
            }
            Err(e) => DeliveryResult::Deferred {
                text: format!("Unable to forward message: {e}. (#4.3.0)"),
                status: None,
            },
        }
    }
}

/// Who a forward is queued for in qmail-queue's trace line: `invoked by alias` for the
/// alias user, else `invoked by uid U` with the forwarding user's uid.
fn forwarder(user: Option<&LocalUser>) -> mta_core::header::QueueInvoker {
    use mta_core::header::QueueInvoker;
    match user.map(LocalUser::account) {
        Some(a) if a.user() != b"alias" => QueueInvoker::Uid(a.uid()),
        _ => QueueInvoker::Alias,
    }
}

/// Offers a maildir batch's sync (one of its two; see [`mta_maildir::DeliveryBatch`]) to
/// the queue: when the maildirs are on the queue's file system, the next commit round's
/// `syncfs`, shared with the messages being received, makes them durable, so deliveries and
/// enqueues share flushes instead of each paying their own. `None` (the batch syncs by
/// itself) for another file system or a queue that does not commit in rounds.
fn queue_sync(queue: &Queue, device: u64) -> Option<io::Result<()>> {
    if queue.device() != Some(device) {
        return None;
    }
    match queue.sync_filesystem() {
        Ok(true) => Some(Ok(())),
        Ok(false) => None,
        Err(e) => Some(Err(io::Error::other(e))),
    }
}

/// Runs deliveries in this process (qmail-local's work, through mta-dotqmail), in order,
/// with one memo of `.qmail` lookups for the frame (`SystemExecutor::with_lookup_memo`: a
/// frame's deliveries see the files as its first one found them), with their maildir
/// lines staged and made durable together at the end (each of the
/// commit's two file-system syncs offered to `sync` first, see [`queue_sync`]): a delivery
/// with a maildir line whose commit failed is deferred (and its forward dropped), so
/// nothing is reported delivered before it is durable.
fn run_requests<'a>(
    requests: impl Iterator<Item = (&'a [u8], &'a DeliveryRequest<'a>)>,
    options: &DeliveryOptions,
    program_timeout: Duration,
    sync: &mut dyn FnMut(u64) -> Option<io::Result<()>>,
) -> Vec<Answer> {
    let mut exec = SystemExecutor::new()
        .with_base_env(base_env())
        .with_program_timeout(Some(program_timeout))
        .with_maildir_commit(MaildirCommit::Batched)
        .with_lookup_memo();
    let mut answers: Vec<Answer> = requests
        .enumerate()
        .map(|(k, (message, r))| {
            exec.begin_delivery(k);
            let outcome = deliver(&mut exec, r, options, Message::Bytes(message));
            (outcome.to_delivery_result(), outcome.forward)
        })
        .collect();
    for (k, e) in exec.commit_maildirs_with(sync) {
        if let Some(answer) = answers.get_mut(k) {
            crate::log::line(&format!("warning: maildir commit failed: {e}"));
            *answer = (
                DeliveryResult::Deferred {
                    text: "Temporary error on maildir delivery. (#4.3.0)".into(),
                    status: None,
                },
                None,
            );
        }
    }
    answers
}

/// Requests of one (uid, gid), with their positions in the batch.
type UidGroup<'a, 'r> = ((u32, u32), Vec<(usize, &'a Request<'r>)>);

/// Per-(uid, gid) worker processes, started by lspawn.
struct Workers {
    lspawn: crate::lspawn::Client,
    idle: Mutex<HashMap<(u32, u32), Vec<Worker>>>,
    program_timeout: Duration,
}

/// A worker's connection (lspawn reaps the process).
struct Worker {
    input: UnixStream,
    output: std::io::BufReader<UnixStream>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        // The end of its input ends the worker's loop.
        let _ = self.input.shutdown(std::net::Shutdown::Both);
    }
}

/// Idle workers kept per (uid, gid): at least `concurrencylocal`, so a busy user never
/// waits for a process start.
const MAX_IDLE_PER_USER: usize = 1000;

impl Workers {
    /// Runs `requests` in workers, one exchange per (uid, gid): each message crosses the
    /// pipe once per worker, not once per recipient. One answer per request, in order.
    fn run_all(&self, requests: &[Request<'_>], queue: &Queue) -> Vec<Answer> {
        let mut groups: Vec<UidGroup<'_, '_>> = Vec::new();
        for (k, r) in requests.iter().enumerate() {
            let a = r.2.user.account();
            let key = (a.uid(), a.gid());
            match groups.iter_mut().find(|(g, _)| *g == key) {
                Some((_, list)) => list.push((k, r)),
                None => groups.push((key, vec![(k, r)])),
            }
        }
        let mut out: Vec<Option<Answer>> = vec![None; requests.len()];
        for (key, list) in groups {
            let batch: Vec<&Request<'_>> = list.iter().map(|(_, r)| *r).collect();
            let answers = self.run(key, &batch, queue);
            for ((k, _), answer) in list.iter().zip(answers) {
                out[*k] = Some(answer);
            }
        }
        out.into_iter()
            .map(|a| {
                a.unwrap_or_else(|| {
                    let text = "Internal error: no delivery result. (#4.3.0)".to_owned();
                    (DeliveryResult::Deferred { text, status: None }, None)
                })
            })
            .collect()
    }

    /// One exchange with a worker of `key` for `batch` (all of that uid and gid).
    fn run(&self, key: (u32, u32), batch: &[&Request<'_>], queue: &Queue) -> Vec<Answer> {
        let deferred = |text: String| -> Vec<Answer> {
            batch
                .iter()
                .map(|_| {
                    (
                        DeliveryResult::Deferred {
                            text: text.clone(),
                            status: None,
                        },
                        None,
                    )
                })
                .collect()
        };
        // qmail-lspawn refused uid 0; a worker with gid 0 could read and write whatever
        // root's group may, so it is refused as well.
        if key.0 == 0 {
            return deferred("Not allowed to perform deliveries as root. (#4.3.0)".into());
        }
        if key.1 == 0 {
            return deferred("Not allowed to perform deliveries with group 0. (#4.3.0)".into());
        }
        let worker = self
            .idle
            .lock()
            .ok()
            .and_then(|mut m| m.get_mut(&key).and_then(Vec::pop));
        let mut worker = match worker {
            Some(w) => w,
            None => match self.spawn(batch.first().map_or(&[][..], |r| r.2.local)) {
                Ok((w, ids)) if ids == key => w,
                // users/assign changed between our lookup and lspawn's: this round
                // waits for the next one, which looks again.
                Ok(_) => return deferred("User database changed. (#4.3.0)".into()),
                Err(crate::lspawn::SpawnError::Refused(text)) => return deferred(text),
                Err(e) => {
                    return deferred(format!(
                        "Unable to start local delivery worker: {e}. (#4.3.0)"
                    ));
                }
            },
        };
        match exchange(&mut worker, batch, queue) {
            Ok(answers) => {
                if let Ok(mut m) = self.idle.lock() {
                    let list = m.entry(key).or_default();
                    if list.len() < MAX_IDLE_PER_USER {
                        list.push(worker);
                    }
                }
                answers
            }
            Err(e) => deferred(format!("Local delivery worker crashed: {e}. (#4.3.0)")),
        }
    }

    /// A new worker for the user `local` resolves to, from lspawn, and its (uid, gid).
    fn spawn(&self, local: &[u8]) -> Result<(Worker, (u32, u32)), crate::lspawn::SpawnError> {
        let (stream, ids) = self.lspawn.spawn_worker(local, self.program_timeout)?;
        let output = stream.try_clone().map_err(crate::lspawn::SpawnError::Io)?;
        Ok((
            Worker {
                input: stream,
                output: std::io::BufReader::new(output),
            },
            ids,
        ))
    }
}

/// Most syncs a worker may have the queue process run for one request frame: its maildir
/// batch asks twice (data, then names) for the queue's file system. Past this, the answer
/// is "sync it yourself", so a worker (which runs as the user, who may tamper with it)
/// cannot keep the queue process syncing.
const MAX_SHARED_SYNCS: usize = 2;

/// Sends `batch` in one request frame (one message per job, each with its deliveries) and
/// reads the answer frame back (the protocol is `mta_dotqmail::worker`'s), answering the
/// worker's requests to sync the queue's file system on the way ([`queue_sync`]).
fn exchange(w: &mut Worker, batch: &[&Request<'_>], queue: &Queue) -> io::Result<Vec<Answer>> {
    // Consecutive deliveries of one job share its message in the frame.
    let mut messages: Vec<(usize, &[u8], Vec<WorkerRequest<'_>>)> = Vec::new();
    for (job, message, r) in batch {
        let a = r.user.account();
        let request = WorkerRequest {
            user: a.user(),
            uid: a.uid(),
            gid: a.gid(),
            home: a.home().as_os_str().as_encoded_bytes(),
            dash: r.user.dash(),
            ext: r.user.ext(),
            local: r.local,
            domain: r.domain,
            sender: r.sender,
            default_delivery: r.default_delivery,
            now: r.now,
        };
        match messages.last_mut() {
            Some((j, _, list)) if j == job => list.push(request),
            _ => messages.push((*job, message, vec![request])),
        }
    }
    let frames: Vec<(&[u8], &[WorkerRequest<'_>])> = messages
        .iter()
        .map(|(_, m, list)| (*m, list.as_slice()))
        .collect();
    worker::write_batch(&mut w.input, &frames)?;
    let mut synced = 0;
    loop {
        let fields = frame::read(&mut w.output)?.ok_or(io::ErrorKind::UnexpectedEof)?;
        let Some(device) = worker::decode_sync_request(&fields) else {
            return worker::decode_answers(fields, batch.len())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad answer"));
        };
        let answer = if synced < MAX_SHARED_SYNCS {
            match queue_sync(queue, device) {
                Some(Ok(())) => {
                    synced += 1;
                    SyncAnswer::Synced
                }
                Some(Err(e)) => SyncAnswer::Failed(e.to_string()),
                None => SyncAnswer::NotShared,
            }
        } else {
            SyncAnswer::NotShared
        };
        worker::write_sync_answer(&mut w.input, &answer)?;
    }
}

/// A worker's [`queue_sync`]: asks the spawner (the queue process) over the pipe to sync
/// the file system `device` for it. `None` when it will not (the batch syncs by itself).
fn ask_spawner_to_sync(
    input: &mut impl io::BufRead,
    output: &mut std::fs::File,
    device: u64,
) -> Option<io::Result<()>> {
    if let Err(e) = worker::write_sync_request(output, device) {
        return Some(Err(e));
    }
    let answer = match frame::read(input) {
        Ok(Some(fields)) => worker::decode_sync_answer(&fields),
        Ok(None) => return Some(Err(io::ErrorKind::UnexpectedEof.into())),
        Err(e) => return Some(Err(e)),
    };
    match answer {
        Some(SyncAnswer::Synced) => Some(Ok(())),
        Some(SyncAnswer::NotShared) => None,
        Some(SyncAnswer::Failed(text)) => Some(Err(io::Error::other(text))),
        None => Some(Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad sync answer",
        ))),
    }
}

/// `mta local-worker`: the per-user delivery process. Reads request frames on stdin, runs
/// each delivery as the current (already dropped) uid, answers on stdout; exits at EOF.
pub fn worker_main() -> i32 {
    crate::privs::set_process_name("mta-worker");
    let stdin = io::stdin();
    // stdin is already buffered by std. Answers go to a plain descriptor, one write(2)
    // each (frame::write builds one buffer): std's stdout is line-buffered and would split
    // an answer at its last newline, costing the daemon a second read and wakeup.
    let Ok(out) = std::os::fd::AsFd::as_fd(&io::stdout()).try_clone_to_owned() else {
        return 111;
    };
    let mut input = stdin.lock();
    let mut output = std::fs::File::from(out);
    let options = DeliveryOptions::default();
    let program_timeout = std::env::var(TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(DEFAULT_PROGRAM_TIMEOUT, Duration::from_secs);
    loop {
        let fields = match frame::read(&mut input) {
            Ok(Some(f)) => f,
            Ok(None) => return 0,
            Err(_) => return 111,
        };
        let mut sync = |device| ask_spawner_to_sync(&mut input, &mut output, device);
        let Some(answers) = worker_batch(&fields, &options, program_timeout, &mut sync) else {
            return 111;
        };
        if worker::write_answers(&mut output, &answers).is_err() {
            return 111;
        }
    }
}

/// Runs every request of one frame, in order, their maildir lines committed together.
fn worker_batch(
    fields: &[Vec<u8>],
    options: &DeliveryOptions,
    program_timeout: Duration,
    sync: &mut dyn FnMut(u64) -> Option<io::Result<()>>,
) -> Option<Vec<Answer>> {
    let batch = worker::decode_batch(fields)?;
    let mut users: Vec<(&[u8], LocalUser, &WorkerRequest<'_>)> = Vec::new();
    for (message, requests) in &batch {
        for r in requests {
            let account = Account::new(r.user.to_vec(), r.uid, r.gid, r.home);
            users.push((message, LocalUser::new(account, r.dash, r.ext.to_vec()), r));
        }
    }
    let requests: Vec<(&[u8], DeliveryRequest<'_>)> = users
        .iter()
        .map(|(message, user, r)| {
            let request = DeliveryRequest {
                user,
                local: r.local,
                domain: r.domain,
                sender: r.sender,
                default_delivery: r.default_delivery,
                now: r.now,
            };
            (*message, request)
        })
        .collect();
    Some(run_requests(
        requests.iter().map(|(m, r)| (*m, r)),
        options,
        program_timeout,
        sync,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The queue syncs a worker's maildir batch only on its own file system, and at most
    /// [`MAX_SHARED_SYNCS`] times per request frame: a worker (the user's process) that
    /// keeps asking is told to sync by itself.
    #[test]
    fn a_worker_gets_at_most_two_shared_syncs_per_frame_and_only_for_the_queues_disk() {
        let dir = tempfile::tempdir().unwrap();
        let queue = Queue::open(dir.path(), mta_queue::QueueOptions::default()).unwrap();
        let dev = queue.device().unwrap();
        assert!(matches!(queue_sync(&queue, dev), Some(Ok(()))));
        assert!(queue_sync(&queue, dev ^ 1).is_none(), "another file system");

        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut worker = Worker {
            input: ours.try_clone().unwrap(),
            output: io::BufReader::new(ours),
        };
        let fake = std::thread::spawn(move || {
            let mut input = io::BufReader::new(theirs.try_clone().unwrap());
            let mut output = theirs;
            // The request frame.
            frame::read(&mut input).unwrap().unwrap();
            let mut answers = Vec::new();
            for device in [dev ^ 1, dev, dev, dev] {
                worker::write_sync_request(&mut output, device).unwrap();
                let fields = frame::read(&mut input).unwrap().unwrap();
                answers.push(worker::decode_sync_answer(&fields).unwrap());
            }
            worker::write_answers(&mut output, &[]).unwrap();
            answers
        });
        // An empty frame is enough: the worker's side is scripted.
        let got = exchange(&mut worker, &[], &queue);
        assert!(got.unwrap().is_empty());
        assert_eq!(
            fake.join().unwrap(),
            vec![
                SyncAnswer::NotShared,
                SyncAnswer::Synced,
                SyncAnswer::Synced,
                SyncAnswer::NotShared,
            ]
        );
    }
}
