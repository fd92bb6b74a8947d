//! A worker: owns one server's session and runs experiments on it, one
//! action at a time, never sending an action twice.

use crate::coordinator::experiment::{Experiment, Observation, Outcome, StartState};
use crate::gym::wire::{InitializeRequest, ServerError};
use crate::gym::{Error as GymError, GymClient};
use crate::learning::WorkerId;

/// A worker and the server it drives.
#[derive(Debug, Clone)]
pub struct Worker {
    id: WorkerId,
    client: GymClient,
}

/// Why an experiment could not start. Nothing was pressed, so it may be
/// run again elsewhere.
#[derive(Debug, thiserror::Error)]
#[error("{worker} could not start {experiment}")]
pub struct StartError {
    /// The worker.
    pub worker: WorkerId,
    /// The experiment.
    pub experiment: crate::coordinator::experiment::ExperimentId,
    /// The server's error.
    #[source]
    pub source: GymError,
}

impl Worker {
    /// A worker driving `client`'s server.
    pub fn new(id: WorkerId, client: GymClient) -> Worker {
        Worker { id, client }
    }

    /// The worker's id.
    pub fn id(&self) -> WorkerId {
        self.id
    }

    /// The client of the worker's server.
    pub fn client(&self) -> &GymClient {
        &self.client
    }

    /// Runs one experiment: loads its start state, then takes its actions
    /// in order, observing every state.
    ///
    /// An action that fails is not sent again: the outcome ends there with
    /// the error. The one exception is the server's `SESSION_TIMEOUT`
    /// placeholder, which means no game ran the action; then the worker
    /// starts the session again and reruns the experiment from its start,
    /// once.
    #[tracing::instrument(skip(self, experiment), fields(worker = %self.id, experiment = %experiment.id))]
    pub async fn run(&self, experiment: &Experiment) -> Result<Outcome, StartError> {
        let mut restarted = false;
        loop {
            let outcome = self.attempt(experiment).await?;
            let session_lost = outcome.error.as_deref() == Some(SESSION_LOST);
            if session_lost && !restarted {
                tracing::info!("session timed out on the server, starting it again");
                restarted = true;
                continue;
            }
            return Ok(outcome);
        }
    }

    async fn attempt(&self, experiment: &Experiment) -> Result<Outcome, StartError> {
        let request = match &experiment.start {
            StartState::Fresh => InitializeRequest::default(),
            StartState::Saved(state_file) => InitializeRequest {
                load_state_file: Some(state_file.clone()),
                ..InitializeRequest::default()
            },
        };
        let start = self
            .client
            .initialize(&request)
            .await
            .map_err(|source| StartError {
                worker: self.id,
                experiment: experiment.id,
                source,
            })?;

        let mut outcome = Outcome {
            experiment: experiment.id,
            start: Observation::from(&start),
            observations: Vec::new(),
            steps: Vec::new(),
            frames: 0,
            error: None,
        };
        for (step, action) in experiment
            .script
            .steps()
            .iter()
            .zip(experiment.script.actions())
        {
            match self.client.act(&action).await {
                Ok(state) => {
                    outcome.observations.push(Observation::from(&state));
                    outcome.steps.push(*step);
                    outcome.frames += action.emulated_frames();
                }
                Err(error) => {
                    outcome.error = Some(match error.server_error() {
                        Some(ServerError::SessionTimeout) => SESSION_LOST.to_owned(),
                        _ => format!("{error:#}"),
                    });
                    break;
                }
            }
        }
        Ok(outcome)
    }
}

/// The error an outcome carries when the server lost the session.
pub const SESSION_LOST: &str = "the server has no game session (SESSION_TIMEOUT)";
