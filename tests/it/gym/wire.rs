//! The wire protocol against real exchanges captured from the Pokemon Gym
//! server (`tests/fixtures/gym/`).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail, ensure};
use gymfleet::gym::wire::{
    self, Action, DecodeError, Endpoint, Evaluation, GameState, InvalidAction, Key, Position,
    SavedState, ServerError, Status, StopResponse,
};
use gymfleet_harness::prop::{self, PropertyFailure};
use proptest::prelude::*;
use serde_json::Value;

/// What a fixture's response must decode to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    State,
    Placeholder,
    Running,
    NotInitializedStatus,
    Stopped,
    NothingToStop,
    Evaluation,
    Saved,
    NotInitialized,
    InvalidKey,
    KeysRequired,
    InvalidFrames,
    UnknownActionType,
    RomNotFound,
    InitializeFailed,
    Validation(&'static str),
    NotFound,
    Http(u16),
    /// Not a gym endpoint: the OpenAPI document and the docs page.
    Document,
}

fn expectation(fixture: &str) -> Option<Expect> {
    use Expect::*;
    let prefix = fixture.split('_').next()?;
    Some(match prefix {
        "A01" | "A07" | "B59" | "C02" => NotInitializedStatus,
        "A02" | "A04" | "A09" | "B60" | "B61" => NotInitialized,
        "A03" => Placeholder,
        "A05" | "B62" => NothingToStop,
        "A06" | "B50" | "B52" | "B63" => InitializeFailed,
        "A08" | "B31" | "B55" | "C03" => Evaluation,
        "B00" | "B00b" => Document,
        "B01" | "B02" | "B07" | "B10" | "B11" | "B12" | "B13" | "B22" | "B27" | "B53" | "B54"
        | "B70" | "B71" | "B73" | "B80" | "B90" | "B92" => State,
        "B03" | "B42" => Validation("body"),
        "B04" => Validation("body.13"),
        "B05" => Validation("body.headless"),
        "B06" => Validation("body"),
        "B14" | "B15" => InvalidKey,
        "B16" | "B17" => KeysRequired,
        "B18" => Validation("body.keys"),
        "B19" | "B20" | "B23" => InvalidFrames,
        "B21" => Validation("body.frames"),
        "B24" => UnknownActionType,
        "B25" => Validation("body.action_type"),
        "B26" => Validation("body.34"),
        "B30" | "B51" | "B56" | "B74" | "B81" | "B91" => Running,
        "B40" | "B41" | "B43" | "B44" | "B57" => Saved,
        "B45" | "B47" => NotFound,
        "B46" => Http(405),
        "B58" | "B72" => Stopped,
        "C01" => RomNotFound,
        _ => return None,
    })
}

struct Exchange {
    name: String,
    method: String,
    path: String,
    request_body: Option<String>,
    status: u16,
    body: Vec<u8>,
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gym")
}

fn exchanges() -> anyhow::Result<Vec<Exchange>> {
    let mut exchanges = Vec::new();
    for entry in std::fs::read_dir(fixture_dir())? {
        let path = entry?.path();
        let name = path.file_stem().and_then(|stem| stem.to_str()).unwrap_or_default().to_owned();
        let is_exchange = path.extension().is_some_and(|extension| extension == "json")
            && name.as_bytes().first().is_some_and(u8::is_ascii_uppercase);
        if !is_exchange {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let fixture: Value =
            serde_json::from_str(&text).with_context(|| format!("`{}`", path.display()))?;
        let response = &fixture["response"];
        let body = match (&response["body_kind"], &response["body"]) {
            (Value::String(kind), Value::String(text)) if kind != "json" => text.clone().into_bytes(),
            (_, body) => serde_json::to_vec(body)?,
        };
        exchanges.push(Exchange {
            method: fixture["request"]["method"].as_str().unwrap_or_default().to_owned(),
            path: fixture["request"]["path"].as_str().unwrap_or_default().to_owned(),
            request_body: fixture["request"]["body_raw"].as_str().map(str::to_owned),
            status: u16::try_from(response["status"].as_u64().context("no status")?)?,
            body,
            name,
        });
    }
    exchanges.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(exchanges)
}

fn endpoint(path: &str) -> Option<Endpoint> {
    Endpoint::ALL.into_iter().find(|endpoint| endpoint.path() == path)
}

/// Decodes one exchange as its endpoint's answer and checks it against
/// the expectation.
fn check(exchange: &Exchange, expect: Expect) -> anyhow::Result<()> {
    let endpoint = endpoint(&exchange.path);
    let (status, body) = (exchange.status, exchange.body.as_slice());
    let server_error = |result: Result<(), DecodeError>| match result {
        Err(DecodeError::Server(error)) => Ok(error),
        other => bail!("expected a server error, got {other:?}"),
    };
    let error = || -> anyhow::Result<ServerError> {
        match endpoint {
            Some(Endpoint::Status) => server_error(wire::decode::<Status>(Endpoint::Status, status, body).map(drop)),
            Some(Endpoint::Stop) => server_error(wire::decode::<StopResponse>(Endpoint::Stop, status, body).map(drop)),
            Some(Endpoint::Evaluate) => server_error(wire::decode::<Evaluation>(Endpoint::Evaluate, status, body).map(drop)),
            Some(Endpoint::SaveState) => server_error(wire::decode::<SavedState>(Endpoint::SaveState, status, body).map(drop)),
            Some(endpoint) => server_error(wire::decode::<GameState>(endpoint, status, body).map(drop)),
            None => Ok(wire::server_error(status, body)),
        }
    };
    let endpoint = endpoint.unwrap_or(Endpoint::Status);

    match expect {
        Expect::State => {
            let state: GameState = wire::decode(endpoint, status, body)?;
            ensure!(!state.location.is_empty(), "empty location");
        }
        Expect::Placeholder => {
            let result = wire::decode::<GameState>(endpoint, status, body);
            ensure!(
                result == Err(DecodeError::Server(ServerError::SessionTimeout)),
                "the placeholder decoded as {result:?}"
            );
        }
        Expect::Running => {
            let decoded: Status = wire::decode(endpoint, status, body)?;
            ensure!(matches!(decoded, Status::Running(_)), "{decoded:?}");
        }
        Expect::NotInitializedStatus => {
            let decoded: Status = wire::decode(endpoint, status, body)?;
            ensure!(decoded == Status::NotInitialized, "{decoded:?}");
        }
        Expect::Stopped => {
            let decoded: StopResponse = wire::decode(endpoint, status, body)?;
            ensure!(matches!(decoded, StopResponse::Stopped(_)), "{decoded:?}");
        }
        Expect::NothingToStop => {
            let decoded: StopResponse = wire::decode(endpoint, status, body)?;
            ensure!(decoded == StopResponse::NotInitialized, "{decoded:?}");
        }
        Expect::Evaluation => {
            let _: Evaluation = wire::decode(endpoint, status, body)?;
        }
        Expect::Saved => {
            let saved: SavedState = wire::decode(endpoint, status, body)?;
            ensure!(saved.state_file.ends_with(".state"), "{saved:?}");
        }
        Expect::Validation(location) => match error()? {
            ServerError::Validation(issues) => ensure!(
                issues.iter().any(|issue| issue.loc == location),
                "no issue at `{location}` in {issues:?}"
            ),
            other => bail!("expected a validation error, got {other:?}"),
        },
        Expect::Document => {
            ensure!(status == 200 && !body.is_empty(), "a document fixture without a body");
            if exchange.path == "/openapi.json" {
                let document: Value = serde_json::from_slice(body)?;
                let mut paths: Vec<&str> = document["paths"]
                    .as_object()
                    .context("no paths")?
                    .keys()
                    .map(String::as_str)
                    .collect();
                let mut known: Vec<&str> = Endpoint::ALL.iter().map(|e| e.path()).collect();
                paths.sort_unstable();
                known.sort_unstable();
                ensure!(paths == known, "the server's endpoints {paths:?} differ from {known:?}");
                for endpoint in Endpoint::ALL {
                    let method = endpoint.method().to_lowercase();
                    ensure!(
                        document["paths"][endpoint.path()].get(&method).is_some(),
                        "`{}` is not served with {method}",
                        endpoint.path()
                    );
                }
            }
        }
        expected => {
            let error = error()?;
            let matched = match (expected, &error) {
                (Expect::NotInitialized, ServerError::NotInitialized(_))
                | (Expect::InvalidKey, ServerError::InvalidKey(_))
                | (Expect::KeysRequired, ServerError::KeysRequired(_))
                | (Expect::InvalidFrames, ServerError::InvalidFrames(_))
                | (Expect::UnknownActionType, ServerError::UnknownActionType(_))
                | (Expect::RomNotFound, ServerError::RomNotFound(_))
                | (Expect::InitializeFailed, ServerError::InitializeFailed(_))
                | (Expect::NotFound, ServerError::NotFound) => true,
                (Expect::Http(code), ServerError::Http { status, .. }) => code == *status,
                _ => false,
            };
            ensure!(matched, "expected {expected:?}, got {error:?}");
        }
    }
    Ok(())
}

#[gymfleet_harness::test]
fn every_captured_exchange_decodes_to_its_expected_outcome() -> anyhow::Result<()> {
    let exchanges = exchanges()?;
    ensure!(exchanges.len() >= 70, "only {} fixtures found", exchanges.len());
    let mut failures = Vec::new();
    for exchange in &exchanges {
        let outcome = match expectation(&exchange.name) {
            Some(expect) => check(exchange, expect),
            None => Err(anyhow::anyhow!("no expectation for this fixture")),
        };
        if let Err(error) = outcome {
            failures.push(format!("{} ({} {}): {error:#}", exchange.name, exchange.method, exchange.path));
        }
    }
    ensure!(failures.is_empty(), "{} fixtures failed:\n{}", failures.len(), failures.join("\n"));
    Ok(())
}

#[gymfleet_harness::test]
fn the_richest_state_decodes_every_field() -> anyhow::Result<()> {
    let exchange = exchanges()?
        .into_iter()
        .find(|exchange| exchange.name.starts_with("B53"))
        .context("the synthetic state fixture is missing")?;
    let state: GameState = wire::decode(Endpoint::Initialize, exchange.status, &exchange.body)?;
    ensure!(state.player_name == "RED" && state.rival_name == "BLUE", "{state:?}");
    ensure!(state.location == "OAKS LAB" && state.coordinates == Position { x: 5, y: 6 });
    ensure!(state.badges == ["BOULDER", "CASCADE"] && state.money == 3000);
    ensure!(state.inventory.len() == 2 && state.inventory[1].quantity == 3);
    let charmander = state.pokemons.first().context("no party")?;
    ensure!(charmander.level == 6 && charmander.hp.current == 20 && charmander.hp.max == 22);
    ensure!(charmander.moves.len() == 2 && charmander.status.is_none());
    ensure!(state.dialog.as_deref().is_some_and(|dialog| dialog.starts_with("OAK:")));
    ensure!(state.collision_map.as_deref().is_some_and(|map| map.contains('S')));
    ensure!(state.score == 17.0 && state.step_number == 0);
    Ok(())
}

#[gymfleet_harness::test]
fn actions_serialize_as_the_server_received_them() -> anyhow::Result<()> {
    let cases = [
        ("B10", Action::press([Key::A])?),
        ("B11", Action::press([Key::Up, Key::Up, Key::Left])?),
        ("B12", Action::wait(60)?),
    ];
    let exchanges = exchanges()?;
    for (prefix, action) in cases {
        let exchange = exchanges
            .iter()
            .find(|exchange| exchange.name.starts_with(prefix))
            .with_context(|| format!("fixture {prefix} is missing"))?;
        let sent: Value = serde_json::from_str(exchange.request_body.as_deref().unwrap_or("null"))?;
        ensure!(serde_json::to_value(&action)? == sent, "{action} serialized unlike {prefix}: {sent}");
    }
    Ok(())
}

#[gymfleet_harness::test]
fn invalid_actions_are_refused_before_sending() {
    assert_eq!(Action::press([]), Err(InvalidAction::NoKeys));
    assert_eq!(Action::wait(0), Err(InvalidAction::ZeroFrames));
    assert_eq!(Action::wait(u64::from(u32::MAX) + 1), Err(InvalidAction::TooManyFrames(u64::from(u32::MAX) + 1)));
    assert_eq!(Action::wait(u64::from(wire::MAX_WAIT_FRAMES) + 1), Err(InvalidAction::TooManyFrames(u64::from(wire::MAX_WAIT_FRAMES) + 1)));
    assert_eq!("A".parse::<Key>(), Err(InvalidAction::UnknownKey("A".to_owned())));
    assert_eq!(
        Action::press(vec![Key::B; wire::MAX_KEYS_PER_ACTION + 1]),
        Err(InvalidAction::TooManyKeys(wire::MAX_KEYS_PER_ACTION + 1))
    );
}

#[gymfleet_harness::test]
fn malformed_and_truncated_bodies_are_typed_errors() {
    for body in [&b"{\"player_name\": \"RED\""[..], b"", b"<html>", b"[1, 2]"] {
        let result = wire::decode::<GameState>(Endpoint::Action, 200, body);
        assert!(
            matches!(result, Err(DecodeError::Malformed { endpoint: Endpoint::Action, status: 200, .. })),
            "{:?} decoded as {result:?}",
            String::from_utf8_lossy(body)
        );
    }
    assert_eq!(
        wire::server_error(503, b"upstream unavailable"),
        ServerError::Http { status: 503, detail: "upstream unavailable".to_owned() }
    );
}

fn any_action() -> impl Strategy<Value = Action> {
    let key = proptest::sample::select(Key::ALL.to_vec());
    prop_oneof![
        proptest::collection::vec(key, 1..=wire::MAX_KEYS_PER_ACTION)
            .prop_map(|keys| Action::press(keys).expect("a non-empty, bounded key list")),
        (1..=u64::from(wire::MAX_WAIT_FRAMES))
            .prop_map(|frames| Action::wait(frames).expect("a positive, bounded wait")),
    ]
}

#[gymfleet_harness::test]
fn every_valid_action_serializes_to_the_servers_schema() -> Result<(), PropertyFailure> {
    prop::check(any_action(), |action| {
        let body = serde_json::to_value(&action).map_err(|error| TestCaseError::fail(error.to_string()))?;
        match (&action, body["action_type"].as_str()) {
            (Action::PressKeys(keys), Some("press_key")) => {
                let names: Vec<&str> = body["keys"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                prop_assert_eq!(names.len(), keys.len());
                prop_assert!(names.iter().all(|name| name.parse::<Key>().is_ok()));
                prop_assert_eq!(action.emulated_frames(), 130 * keys.len() as u64);
            }
            (Action::Wait(frames), Some("wait")) => {
                prop_assert_eq!(body["frames"].as_u64(), Some(u64::from(frames.get())));
                prop_assert_eq!(action.emulated_frames(), u64::from(frames.get()));
            }
            (_, action_type) => prop_assert!(false, "unexpected action_type {:?}", action_type),
        }
        Ok(())
    })
}

#[gymfleet_harness::test]
fn each_endpoint_indexes_its_place_in_all() {
    for (position, endpoint) in Endpoint::ALL.into_iter().enumerate() {
        assert_eq!(endpoint.index(), position, "{endpoint}");
    }
}
