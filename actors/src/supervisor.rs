//! The supervisor: spawns and links the dispatcher and, per target, a breaker and a worker;
//! restarts a crashed child after a short, growing delay, within a restart-intensity limit
//! (at most R restarts in T, as in OTP: the [`RestartPolicy`] decides); and hands every job a crashed worker held back to the
//! dispatcher, so that it is retried or failed cleanly instead of being lost.
//!
//! ractor's default supervision stops the supervisor when any child ends; this one overrides
//! it. A crashed dispatcher loses the jobs it held, but each of their reply ports is dropped
//! with it, so their callers are told at once rather than left waiting.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use tokio::time::Instant;

use crate::board::Board;
use crate::breaker::{BreakerActor, BreakerArgs};
use crate::chaos::{self, Site};
use crate::config::EngineConfig;
use crate::directory::Directory;
use crate::dispatcher::{DispatcherActor, DispatcherArgs};
use crate::job::Outstanding;
use crate::policy::{Restart, RestartPolicy};
use crate::upstream::{Target, Upstream};
use crate::worker::{Ledger, WorkerActor, WorkerArgs};

/// Which child an actor is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Dispatcher,
    Worker(Target),
    Breaker(Target),
}

pub(crate) enum SupervisorMsg {
    Restart(Role),
    /// Spawn a breaker and a worker for a target the configuration does not name (with
    /// default limits), unless that many targets were added already (then `Ok(false)`);
    /// replies once both run, or at once if the target already has them.
    Add(Target, Option<usize>, RpcReplyPort<Result<bool, String>>),
}

pub(crate) struct SupervisorActor<U>(PhantomData<fn() -> U>);

impl<U> SupervisorActor<U> {
    pub(crate) fn new() -> Self {
        Self(PhantomData)
    }
}

pub(crate) struct SupervisorArgs<U: Upstream> {
    pub(crate) upstream: Arc<U>,
    pub(crate) config: Arc<EngineConfig>,
    pub(crate) board: Arc<Board>,
    pub(crate) directory: Arc<Directory<U>>,
    pub(crate) outstanding: Arc<Outstanding>,
    pub(crate) seed: u64,
    /// The link to the fleet, if the engine shares state with one.
    pub(crate) fleet: Option<crate::fleet::FleetHandle>,
    /// Prefix of every child's registered name, unique per engine.
    pub(crate) name: String,
}

pub(crate) struct SupervisorState<U: Upstream> {
    args: SupervisorArgs<U>,
    children: HashMap<ActorId, Role>,
    ledgers: HashMap<Target, Arc<Ledger<U>>>,
    restarts: RestartPolicy,
    generation: u64,
}

impl<U: Upstream> Actor for SupervisorActor<U> {
    type Msg = SupervisorMsg;
    type State = SupervisorState<U>;
    type Arguments = SupervisorArgs<U>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs<U>,
    ) -> Result<Self::State, ActorProcessingErr> {
        let ledgers = args
            .config
            .targets
            .iter()
            .map(|(t, _)| (t.clone(), Arc::new(Ledger::new())))
            .collect();
        let supervision = args.config.supervision;
        let mut state = SupervisorState {
            restarts: RestartPolicy::new(
                supervision.max_restarts,
                supervision.within,
                supervision.restart_delay,
            ),
            args,
            children: HashMap::new(),
            ledgers,
            generation: 0,
        };
        state.spawn(&myself, Role::Dispatcher).await?;
        let targets: Vec<Target> = state
            .args
            .config
            .targets
            .iter()
            .map(|(t, _)| t.clone())
            .collect();
        for target in targets {
            state.spawn(&myself, Role::Breaker(target.clone())).await?;
            state.spawn(&myself, Role::Worker(target)).await?;
        }
        Ok(state)
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.args.directory.set_dispatcher(None);
        myself
            .stop_children_and_wait(Some("engine stopped".into()), None)
            .await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        chaos::strike(Site::Supervisor).await;
        match message {
            SupervisorMsg::Restart(role) => {
                if let Err(error) = state.spawn(&myself, role.clone()).await {
                    // Counted as another crash: retried later, within the intensity limit.
                    state.crashed(&myself, role, &error.to_string());
                }
            }
            SupervisorMsg::Add(target, limit, reply) => {
                let added = state.add(&myself, target, limit).await;
                let _ = reply.send(added.map_err(|error| error.to_string()));
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, why) = match event {
            SupervisionEvent::ActorFailed(cell, error) => (cell, error.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, reason.unwrap_or_else(|| "stopped".into()))
            }
            _ => return Ok(()),
        };
        if let Some(role) = state.children.remove(&cell.get_id()) {
            state.crashed(&myself, role, &why);
        }
        Ok(())
    }
}

impl<U: Upstream> SupervisorState<U> {
    async fn add(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        target: Target,
        limit: Option<usize>,
    ) -> Result<bool, ActorProcessingErr> {
        if self.args.directory.worker(&target).is_some() {
            return Ok(true);
        }
        let added = self
            .args
            .directory
            .targets()
            .iter()
            .filter(|known| self.args.config.limits(known).is_none())
            .count();
        if limit.is_some_and(|limit| added >= limit) {
            return Ok(false);
        }
        tracing::info!(%target, "serving a target outside the configuration, with default limits");
        if self.args.directory.breaker(&target).is_none() {
            self.spawn(myself, Role::Breaker(target.clone())).await?;
        }
        self.spawn(myself, Role::Worker(target)).await?;
        Ok(true)
    }

    async fn spawn(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        role: Role,
    ) -> Result<(), ActorProcessingErr> {
        self.generation += 1;
        let supervisor = myself.get_cell();
        let cell: ActorCell = match &role {
            Role::Dispatcher => {
                let args = DispatcherArgs {
                    config: self.args.config.clone(),
                    board: self.args.board.clone(),
                    directory: self.args.directory.clone(),
                    outstanding: self.args.outstanding.clone(),
                    seed: self.args.seed.wrapping_add(self.generation << 32),
                };
                let name = Some(format!("{}/dispatcher", self.args.name));
                let (actor, _) =
                    Actor::spawn_linked(name, DispatcherActor::new(), args, supervisor).await?;
                self.args.directory.set_dispatcher(Some(actor.clone()));
                actor.get_cell()
            }
            Role::Breaker(target) => {
                let args = BreakerArgs {
                    target: target.clone(),
                    config: self.args.config.breaker,
                    seed: self.args.seed.wrapping_add(self.generation),
                    board: self.args.board.clone(),
                    directory: self.args.directory.clone(),
                    fleet: self.args.fleet.clone(),
                };
                let name = Some(format!("{}/breaker/{target}", self.args.name));
                let (actor, _) =
                    Actor::spawn_linked(name, BreakerActor::new(), args, supervisor).await?;
                self.args
                    .directory
                    .set_breaker(target.clone(), actor.clone());
                actor.get_cell()
            }
            Role::Worker(target) => {
                let args = WorkerArgs {
                    target: target.clone(),
                    upstream: self.args.upstream.clone(),
                    limits: self.args.config.limits(target).copied().unwrap_or_default(),
                    ledger: self
                        .ledgers
                        .entry(target.clone())
                        .or_insert_with(|| Arc::new(Ledger::new()))
                        .clone(),
                    directory: self.args.directory.clone(),
                    board: self.args.board.clone(),
                };
                let name = Some(format!("{}/worker/{target}", self.args.name));
                let (actor, _) =
                    Actor::spawn_linked(name, WorkerActor::new(), args, supervisor).await?;
                self.args
                    .directory
                    .set_worker(target.clone(), actor.clone());
                actor.get_cell()
            }
        };
        self.children.insert(cell.get_id(), role);
        Ok(())
    }

    /// A child ended: hand back what it held, then restart it, or give up if it keeps dying.
    fn crashed(&mut self, myself: &ActorRef<SupervisorMsg>, role: Role, why: &str) {
        tracing::warn!(?role, why, "engine actor ended; restarting");
        metrics::counter!("breakwater_actor_restarts_total", "role" => role_label(&role))
            .increment(1);
        if let Role::Worker(target) = &role {
            if let Some(ledger) = self.ledgers.get(target) {
                ledger.hand_back(target, &self.args.directory);
            }
            self.args.board.clear_load(target);
        }
        match self.restarts.crashed(Instant::now()) {
            Restart::After(delay) => {
                myself.send_after(delay, move || SupervisorMsg::Restart(role));
            }
            Restart::GiveUp => {
                tracing::error!(?role, "restart intensity exceeded; stopping the engine");
                myself.stop(Some("restart intensity exceeded".into()));
            }
        }
    }
}

fn role_label(role: &Role) -> &'static str {
    match role {
        Role::Dispatcher => "dispatcher",
        Role::Worker(_) => "worker",
        Role::Breaker(_) => "breaker",
    }
}
