//! The Pokemon Gym wire protocol: typed requests and responses, and the
//! decoding of a response (status code and body) into a value or a typed
//! error.
//!
//! Decoding is lenient where the real server is inconsistent (unknown
//! fields are ignored, nullable fields are `Option`) and strict where it
//! matters: key names are an enum, an action is validated before it can be
//! built, and the `200 OK` placeholder state whose `location` is
//! `SESSION_TIMEOUT` is an error, never a game state. Everything here is
//! sans-IO.

use std::fmt;
use std::num::NonZeroU32;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Frames the server emulates for one key press (press, hold, release and
/// settle).
pub const FRAMES_PER_KEY_PRESS: u64 = 130;

/// The `location` of the placeholder state the server answers with `200 OK`
/// when no game is running.
pub const SESSION_TIMEOUT_LOCATION: &str = "SESSION_TIMEOUT";

/// The largest number of frames one `wait` action may ask for.
///
/// The server accepts any positive integer, but one request that emulates
/// minutes of game time is a bug in the caller, and its deadline would be
/// unbounded.
pub const MAX_WAIT_FRAMES: u32 = 60 * 60 * 10;

/// The largest number of keys one `press_key` action may carry.
pub const MAX_KEYS_PER_ACTION: usize = 64;

/// An endpoint of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// `POST /initialize`: start or replace the game.
    Initialize,
    /// `POST /action`: press keys or wait.
    Action,
    /// `GET /status`.
    Status,
    /// `POST /stop`: end the game.
    Stop,
    /// `GET /evaluate`: the session's score.
    Evaluate,
    /// `POST /save_state`.
    SaveState,
}

impl Endpoint {
    /// Every endpoint, in a fixed order.
    pub const ALL: [Endpoint; 6] = [
        Endpoint::Initialize,
        Endpoint::Action,
        Endpoint::Status,
        Endpoint::Stop,
        Endpoint::Evaluate,
        Endpoint::SaveState,
    ];

    /// The endpoint's position in [`Endpoint::ALL`], for per-endpoint
    /// tables.
    pub fn index(self) -> usize {
        match self {
            Endpoint::Initialize => 0,
            Endpoint::Action => 1,
            Endpoint::Status => 2,
            Endpoint::Stop => 3,
            Endpoint::Evaluate => 4,
            Endpoint::SaveState => 5,
        }
    }

    /// The request path, such as `/action`.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Initialize => "/initialize",
            Endpoint::Action => "/action",
            Endpoint::Status => "/status",
            Endpoint::Stop => "/stop",
            Endpoint::Evaluate => "/evaluate",
            Endpoint::SaveState => "/save_state",
        }
    }

    /// The HTTP method the server routes the endpoint under.
    pub fn method(self) -> &'static str {
        match self {
            Endpoint::Status | Endpoint::Evaluate => "GET",
            _ => "POST",
        }
    }

    /// A short name for metrics and logs, such as `action`.
    pub fn name(self) -> &'static str {
        &self.path()[1..]
    }

    /// Returns true if and only if sending the request twice has the same
    /// effect as sending it once, so that it may be retried after it could
    /// have reached the server.
    pub fn is_idempotent(self) -> bool {
        matches!(self, Endpoint::Status | Endpoint::Evaluate)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.path())
    }
}

/// A button of the Game Boy, as the server names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Key {
    /// The A button.
    A,
    /// The B button.
    B,
    /// Start.
    Start,
    /// Select.
    Select,
    /// Up on the d-pad.
    Up,
    /// Down on the d-pad.
    Down,
    /// Left on the d-pad.
    Left,
    /// Right on the d-pad.
    Right,
}

impl Key {
    /// Every key, in the order the server lists them.
    pub const ALL: [Key; 8] = [
        Key::A,
        Key::B,
        Key::Start,
        Key::Select,
        Key::Up,
        Key::Down,
        Key::Left,
        Key::Right,
    ];

    /// The key's name on the wire, such as `start`.
    pub fn name(self) -> &'static str {
        match self {
            Key::A => "a",
            Key::B => "b",
            Key::Start => "start",
            Key::Select => "select",
            Key::Up => "up",
            Key::Down => "down",
            Key::Left => "left",
            Key::Right => "right",
        }
    }

    /// The key's name if it is one of the four directions.
    pub fn direction(self) -> Option<Direction> {
        match self {
            Key::Up => Some(Direction::Up),
            Key::Down => Some(Direction::Down),
            Key::Left => Some(Direction::Left),
            Key::Right => Some(Direction::Right),
            _ => None,
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

impl std::str::FromStr for Key {
    type Err = InvalidAction;

    /// Parses a key by its wire name; the server is case-sensitive, and so
    /// is this.
    fn from_str(name: &str) -> Result<Key, InvalidAction> {
        Key::ALL
            .into_iter()
            .find(|key| key.name() == name)
            .ok_or_else(|| InvalidAction::UnknownKey(name.to_owned()))
    }
}

/// A direction the player can move in, as `valid_moves` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Toward smaller `y`.
    Up,
    /// Toward larger `y`.
    Down,
    /// Toward smaller `x`.
    Left,
    /// Toward larger `x`.
    Right,
}

impl Direction {
    /// The key that walks in this direction.
    pub fn key(self) -> Key {
        match self {
            Direction::Up => Key::Up,
            Direction::Down => Key::Down,
            Direction::Left => Key::Left,
            Direction::Right => Key::Right,
        }
    }
}

/// An action the server can take, valid by construction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// Press these keys one after another.
    PressKeys(Vec<Key>),
    /// Let this many frames pass.
    Wait(NonZeroU32),
}

/// Why an action cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAction {
    /// `press_key` with no key; the server would answer 500.
    #[error("a key press needs at least one key")]
    NoKeys,
    /// More keys than one request may carry.
    #[error("a key press carries at most {MAX_KEYS_PER_ACTION} keys, not {0}")]
    TooManyKeys(usize),
    /// A key name the server does not know.
    #[error(
        "unknown key `{0}`: expected one of `a`, `b`, `start`, `select`, `up`, `down`, `left`, \
         `right`"
    )]
    UnknownKey(String),
    /// A wait of zero frames; the server would answer 500.
    #[error("a wait needs at least 1 frame")]
    ZeroFrames,
    /// A wait longer than [`MAX_WAIT_FRAMES`].
    #[error("a wait lasts at most {MAX_WAIT_FRAMES} frames, not {0}")]
    TooManyFrames(u64),
}

impl Action {
    /// A press of `keys`, one after another.
    pub fn press(keys: impl IntoIterator<Item = Key>) -> Result<Action, InvalidAction> {
        let keys: Vec<Key> = keys.into_iter().collect();
        match keys.len() {
            0 => Err(InvalidAction::NoKeys),
            n_keys if n_keys > MAX_KEYS_PER_ACTION => Err(InvalidAction::TooManyKeys(n_keys)),
            _ => Ok(Action::PressKeys(keys)),
        }
    }

    /// A wait of `frames` frames.
    pub fn wait(frames: u64) -> Result<Action, InvalidAction> {
        match u32::try_from(frames).ok().and_then(NonZeroU32::new) {
            None if frames == 0 => Err(InvalidAction::ZeroFrames),
            Some(frames) if frames.get() <= MAX_WAIT_FRAMES => Ok(Action::Wait(frames)),
            _ => Err(InvalidAction::TooManyFrames(frames)),
        }
    }

    /// The frames the server emulates for this action: 130 per key, or the
    /// frames waited.
    pub fn emulated_frames(&self) -> u64 {
        match self {
            Action::PressKeys(keys) => FRAMES_PER_KEY_PRESS * keys.len() as u64,
            Action::Wait(frames) => u64::from(frames.get()),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::PressKeys(keys) => {
                formatter.write_str("press")?;
                for key in keys {
                    write!(formatter, " {key}")?;
                }
                Ok(())
            }
            Action::Wait(frames) => write!(formatter, "wait {frames}"),
        }
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;

        let mut body = serializer.serialize_struct("ActionRequest", 2)?;
        match self {
            Action::PressKeys(keys) => {
                body.serialize_field("action_type", "press_key")?;
                body.serialize_field("keys", keys)?;
            }
            Action::Wait(frames) => {
                body.serialize_field("action_type", "wait")?;
                body.serialize_field("frames", frames)?;
            }
        }
        body.end()
    }
}

/// The body of `POST /initialize`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InitializeRequest {
    /// Run without a window (the server's default).
    pub headless: bool,
    /// Play sound.
    pub sound: bool,
    /// A save state to load instead of starting fresh.
    pub load_state_file: Option<String>,
    /// Load the session's autosave.
    pub load_autosave: bool,
    /// A session name; an existing session continues.
    pub session_id: Option<String>,
}

impl Default for InitializeRequest {
    fn default() -> InitializeRequest {
        InitializeRequest {
            headless: true,
            sound: false,
            load_state_file: None,
            load_autosave: false,
            session_id: None,
        }
    }
}

/// The body of `POST /save_state`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaveStateRequest {
    /// The state's name; the server picks a timestamped one when absent.
    pub filename: Option<String>,
}

/// A tile position, `[x, y]` on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// Column.
    pub x: i32,
    /// Row.
    pub y: i32,
}

impl Position {
    /// The neighbouring position one step in `direction`.
    pub fn step(self, direction: Direction) -> Position {
        match direction {
            Direction::Up => Position {
                x: self.x,
                y: self.y - 1,
            },
            Direction::Down => Position {
                x: self.x,
                y: self.y + 1,
            },
            Direction::Left => Position {
                x: self.x - 1,
                y: self.y,
            },
            Direction::Right => Position {
                x: self.x + 1,
                y: self.y,
            },
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "({}, {})", self.x, self.y)
    }
}

impl Serialize for Position {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        [self.x, self.y].serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Position {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Position, D::Error> {
        let [x, y] = <[i32; 2]>::deserialize(deserializer)?;
        Ok(Position { x, y })
    }
}

/// The game as `/initialize` and `/action` return it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GameState {
    /// The player's name.
    pub player_name: String,
    /// The rival's name.
    pub rival_name: String,
    /// Money in the bag.
    pub money: i64,
    /// The map's name, with spaces (`OAKS LAB`).
    pub location: String,
    /// The player's tile.
    pub coordinates: Position,
    /// Badges earned.
    pub badges: Vec<String>,
    /// Directions the player can walk in from here.
    #[serde(default)]
    pub valid_moves: Vec<Direction>,
    /// Items in the bag.
    #[serde(default)]
    pub inventory: Vec<InventoryItem>,
    /// The text on screen, if any.
    pub dialog: Option<String>,
    /// The party.
    #[serde(default)]
    pub pokemons: Vec<Pokemon>,
    /// A PNG of the screen, base64; may be empty.
    #[serde(default)]
    pub screenshot_base64: String,
    /// The 9×10 text map of walkable tiles around the player, if known.
    pub collision_map: Option<String>,
    /// Actions taken in this session.
    pub step_number: u64,
    /// The client's think time before this action, in seconds, as the
    /// server measured it (not emulation time).
    #[serde(default)]
    pub execution_time: f64,
    /// The session's score.
    #[serde(default)]
    pub score: f64,
}

/// One stack of items in the bag.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InventoryItem {
    /// The item's name.
    pub item: String,
    /// How many.
    pub quantity: i64,
}

/// A Pokemon in the party.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pokemon {
    /// Its nickname.
    pub nickname: String,
    /// Its species.
    pub species: String,
    /// Its level.
    pub level: i64,
    /// Its hit points.
    pub hp: HitPoints,
    /// Its types.
    pub types: Vec<String>,
    /// Its moves.
    pub moves: Vec<Move>,
    /// A status condition, if any.
    pub status: Option<String>,
}

/// Current and maximum hit points.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HitPoints {
    /// Now.
    pub current: i64,
    /// At full health.
    pub max: i64,
}

/// A move a Pokemon knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Move {
    /// Its name.
    pub name: String,
    /// Power points left.
    pub pp: i64,
}

/// `GET /status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// No game is running.
    NotInitialized,
    /// A game is running.
    Running(RunningStatus),
}

/// What `GET /status` says about a running game.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunningStatus {
    /// Actions taken.
    pub steps_taken: u64,
    /// Where the server keeps the session's files.
    pub session_dir: String,
    /// Seconds until the server ends the session.
    pub remaining_time_seconds: f64,
    /// The session's score.
    pub score: f64,
    /// Pokemon caught.
    pub pokemon_count: u64,
    /// Badges earned.
    pub badges_count: u64,
    /// Distinct locations visited.
    pub locations_count: u64,
}

/// `POST /stop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StopResponse {
    /// There was no game to stop.
    NotInitialized,
    /// The game was stopped; its summary.
    Stopped(StopSummary),
}

/// The summary of a stopped session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StopSummary {
    /// Where the server kept the session's files.
    pub session_dir: String,
    /// The final score.
    pub final_score: f64,
    /// Pokemon caught.
    pub pokemon_collected: Vec<String>,
    /// Badges earned.
    pub badges_earned: Vec<String>,
    /// Locations visited, with underscores (`OAKS_LAB`).
    pub locations_visited: Vec<String>,
}

/// `GET /evaluate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Evaluation {
    /// The session's score.
    pub score: f64,
    /// Pokemon caught.
    pub pokemon: Tally,
    /// Badges earned.
    pub badges: Tally,
    /// Locations visited, with underscores (`OAKS_LAB`).
    pub locations: Tally,
}

/// A count and the items counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tally {
    /// How many.
    pub count: u64,
    /// Which.
    pub items: Vec<String>,
}

/// `POST /save_state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedState {
    /// `success`.
    pub status: String,
    /// Where the server wrote the state; pass it to `load_state_file`.
    pub state_file: String,
}

/// One problem in a `422` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationIssue {
    /// Where in the request, such as `body.keys`.
    #[serde(deserialize_with = "location_path")]
    pub loc: String,
    /// What is wrong.
    pub msg: String,
    /// pydantic's error type, such as `list_type`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// What the server answered instead of the value asked for.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ServerError {
    /// The `200 OK` placeholder state: no game is running, or it expired.
    #[error("no game session: the server answered its `SESSION_TIMEOUT` placeholder state")]
    SessionTimeout,
    /// `400`: the environment is not initialized.
    #[error("the game is not initialized: {0}")]
    NotInitialized(String),
    /// `500`: a key the server does not know.
    #[error("the server refused a key: {0}")]
    InvalidKey(String),
    /// `500`: a key press without keys.
    #[error("the server needs keys for a key press: {0}")]
    KeysRequired(String),
    /// `500`: a wait without a positive frame count.
    #[error("the server refused the frame count: {0}")]
    InvalidFrames(String),
    /// `500`: an action type the server does not know.
    #[error("the server does not know the action type: {0}")]
    UnknownActionType(String),
    /// `500`: the ROM is missing.
    #[error("the server has no ROM: {0}")]
    RomNotFound(String),
    /// `500`: the emulator could not start (a bad or missing save state,
    /// say).
    #[error("the server could not initialize the game: {0}")]
    InitializeFailed(String),
    /// `422`: the request did not match the server's schema.
    #[error("the server refused the request's shape: {}", describe_issues(.0))]
    Validation(Vec<ValidationIssue>),
    /// `404`: no such endpoint on this server.
    #[error("the server has no such endpoint")]
    NotFound,
    /// Any other error status, with the server's `detail` if it gave one.
    #[error("the server answered {status}: {detail}")]
    Http {
        /// The status code.
        status: u16,
        /// The server's `detail`, or the start of the body.
        detail: String,
    },
}

/// Why a response could not be turned into a value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The server answered with an error.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The body is not the JSON this endpoint answers with.
    #[error("malformed {endpoint} response ({status}): {reason}")]
    Malformed {
        /// The endpoint.
        endpoint: Endpoint,
        /// The status code.
        status: u16,
        /// What serde said, and where.
        reason: String,
    },
}

/// A value an endpoint answers with on success.
pub trait Response: DeserializeOwned {
    /// Checks a decoded value for answers that are errors in disguise.
    fn validate(self) -> Result<Self, ServerError> {
        Ok(self)
    }
}

impl Response for GameState {
    fn validate(self) -> Result<GameState, ServerError> {
        match self.location == SESSION_TIMEOUT_LOCATION {
            true => Err(ServerError::SessionTimeout),
            false => Ok(self),
        }
    }
}

impl Response for Status {}
impl Response for StopResponse {}
impl Response for Evaluation {}
impl Response for SavedState {}

/// Decodes what `endpoint` answered: its status code and body.
pub fn decode<T: Response>(endpoint: Endpoint, status: u16, body: &[u8]) -> Result<T, DecodeError> {
    if (200..300).contains(&status) {
        let value: T = serde_json::from_slice(body).map_err(|error| DecodeError::Malformed {
            endpoint,
            status,
            reason: error.to_string(),
        })?;
        return Ok(value.validate()?);
    }
    Err(DecodeError::Server(server_error(status, body)))
}

/// Classifies an error answer by its status code and `detail`.
pub fn server_error(status: u16, body: &[u8]) -> ServerError {
    #[derive(Deserialize)]
    struct TextDetail {
        detail: String,
    }
    #[derive(Deserialize)]
    struct IssuesDetail {
        detail: Vec<ValidationIssue>,
    }

    if status == 422
        && let Ok(issues) = serde_json::from_slice::<IssuesDetail>(body)
    {
        return ServerError::Validation(issues.detail);
    }
    let detail = match serde_json::from_slice::<TextDetail>(body) {
        Ok(text) => text.detail,
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    };
    let has = |needle: &str| detail.contains(needle);
    match status {
        400 if has("not initialized") => ServerError::NotInitialized(detail),
        404 => ServerError::NotFound,
        500 if has("Invalid key") => ServerError::InvalidKey(detail),
        500 if has("Keys parameter is required") => ServerError::KeysRequired(detail),
        500 if has("Frames") => ServerError::InvalidFrames(detail),
        500 if has("Unknown action type") => ServerError::UnknownActionType(detail),
        500 if has("ROM file not found") => ServerError::RomNotFound(detail),
        500 if has("Failed to initialize environment") => ServerError::InitializeFailed(detail),
        status => ServerError::Http { status, detail },
    }
}

/// Joins pydantic's `loc` list (`["body", "keys"]`) into `body.keys`.
fn location_path<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Part {
        Name(String),
        Index(i64),
    }
    let parts = Vec::<Part>::deserialize(deserializer)?;
    let names: Vec<String> = parts
        .into_iter()
        .map(|part| match part {
            Part::Name(name) => name,
            Part::Index(index) => index.to_string(),
        })
        .collect();
    Ok(names.join("."))
}

fn describe_issues(issues: &[ValidationIssue]) -> String {
    let described: Vec<String> = issues
        .iter()
        .map(|issue| format!("`{}` {}", issue.loc, issue.msg))
        .collect();
    described.join("; ")
}
