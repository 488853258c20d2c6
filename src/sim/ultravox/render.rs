//! How the simulator draws an Ultravox call from its seed and renders it: the `Call` with
//! every one of its 23 required keys (nullable ones as `null`), its messages by stage, and
//! the tombstone `/api/deleted_calls` serves once it is deleted.
//!
//! A call is created, may be joined, and ends: recent calls may still be running (not joined
//! yet, or joined), a few never joined (`endReason: unjoined`, no messages), the rest ended
//! with a billed duration and, mostly, a summary. Times are RFC 3339 with microseconds for
//! `created`, durations are protobuf durations (`"12.300s"`), and messages leave out proto3
//! defaults, as Ultravox's do.

use rand::Rng;
use serde_json::{json, Map, Value};

use crate::sim::data::{iso, pick, CallSlot, DeletedCall, Renderer, NAMES, SUMMARIES, TOOLS};

/// Salts this provider's random streams apart from the other providers'.
const SALT: u64 = 0x017A_0001;

/// How calls end, weighted towards hang-ups (`EndReasonEnum`, `unjoined` aside).
const END_REASONS: [&str; 8] = [
    "hangup",
    "hangup",
    "hangup",
    "agent_hangup",
    "agent_hangup",
    "timeout",
    "connection_error",
    "system_error",
];

/// How a call went, drawn from its own random stream.
struct CallShape {
    /// Microseconds past the millisecond of `created` (Ultravox sends microseconds).
    created_us: u16,
    joined_ms: Option<i64>,
    ended_ms: Option<i64>,
    end_reason: Option<&'static str>,
    billed_ms: Option<i64>,
    billing_status: &'static str,
    summary: Option<&'static str>,
    short_summary: Option<&'static str>,
    recording: bool,
    tokens: (i64, i64),
    medium: Value,
    sip: bool,
    /// Messages in the whole call, and whether it had two stages.
    messages: usize,
    two_stages: bool,
}

/// Whether the call was still running when the data set was made: recent calls may be. A call
/// `complete_pending` finished has ended, in the list and by id alike.
pub fn is_unfinished(renderer: &Renderer, slot: CallSlot) -> bool {
    slot.late_ms.is_none() && started_recently(renderer, slot)
}

fn started_recently(renderer: &Renderer, slot: CallSlot) -> bool {
    let age_ms = renderer.anchor_ms - slot.meta.created_ms;
    let chance = match age_ms {
        a if a < 6 * 3_600_000 => 0.5,
        a if a < 3 * 86_400_000 => 0.05,
        _ => 0.0,
    };
    renderer.rng(slot.index, SALT ^ 0x5747).random::<f64>() < chance
}

fn shape(renderer: &Renderer, slot: CallSlot) -> CallShape {
    let mut rng = renderer.rng(slot.index, SALT);
    let created = slot.meta.created_ms;
    let created_us = rng.random_range(0..1000u16);
    let join_delay = rng.random_range(800..8_000i64);
    let talk_ms = rng.random_range(20_000..600_000i64);
    let unjoined = rng.random_bool(0.05);
    let joined_yet = rng.random_bool(0.7);
    let reason = pick(&mut rng, &END_REASONS);
    let summary = pick(&mut rng, &SUMMARIES);
    let has_summary = rng.random_bool(0.9);
    let recording = rng.random_bool(0.6);
    let tokens = (
        rng.random_range(200..20_000i64),
        rng.random_range(100..8_000i64),
    );
    let caller = format!("+1415555{:04}", rng.random_range(0..10_000));
    let agent_line = format!("+1628555{:04}", rng.random_range(0..10_000));
    let (medium, sip) = match rng.random_range(0..4u8) {
        0 => (json!({"webRtc": {}}), false),
        1 => (json!({"twilio": {}}), false),
        2 => (
            json!({"twilio": {"outgoing": {"to": caller, "from": agent_line}}}),
            false,
        ),
        _ => (json!({"sip": {"incoming": {}}}), true),
    };
    let messages = rng.random_range(4..14usize);
    let two_stages = rng.random_bool(0.2);
    let running = is_unfinished(renderer, slot);
    let mut shape = CallShape {
        created_us,
        joined_ms: None,
        ended_ms: None,
        end_reason: None,
        billed_ms: None,
        billing_status: "BILLING_STATUS_PENDING",
        summary: None,
        short_summary: None,
        recording,
        tokens,
        medium,
        sip,
        messages,
        two_stages,
    };
    if running {
        shape.joined_ms = joined_yet.then_some(created + join_delay);
        return shape;
    }
    if unjoined && slot.late_ms.is_none() {
        shape.ended_ms = Some(created + 30_000);
        shape.end_reason = Some("unjoined");
        shape.billed_ms = Some(0);
        shape.billing_status = "BILLING_STATUS_FREE_ZERO_EFFECTIVE_DURATION";
        shape.messages = 0;
        return shape;
    }
    let joined = created + join_delay;
    shape.joined_ms = Some(joined);
    shape.ended_ms = Some(joined + talk_ms);
    shape.end_reason = Some(reason);
    shape.billed_ms = Some(talk_ms);
    shape.billing_status = if reason == "system_error" {
        "BILLING_STATUS_FREE_SYSTEM_ERROR"
    } else {
        "BILLING_STATUS_BILLED"
    };
    if has_summary {
        shape.summary = Some(summary);
        shape.short_summary = summary.split(". ").next();
    }
    shape
}

/// A protobuf duration as Ultravox writes it: seconds with millisecond decimals, `"12.300s"`.
fn duration(ms: i64) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

/// `iso(ms)` with microseconds, as Ultravox writes its times.
fn iso_micros(ms: i64, us: u16) -> String {
    let millis = iso(ms);
    match millis.strip_suffix('Z') {
        Some(stem) => format!("{stem}{us:03}Z"),
        None => millis,
    }
}

fn agent_name(slot: CallSlot) -> String {
    format!("demo-agent-{}", slot.meta.agent + 1)
}

/// Renders one call as Ultravox's `Call`, every required key present.
pub fn render(renderer: &Renderer, slot: CallSlot) -> Value {
    let s = shape(renderer, slot);
    let created = slot.meta.created_ms;
    let agent_id = renderer.agent_id(slot);
    let ended = s.ended_ms.is_some();
    let mut rng = renderer.rng(slot.index, SALT ^ 0xCA11);
    let mut call = Map::new();
    call.insert("callId".into(), json!(renderer.call_id(slot.index)));
    call.insert("clientVersion".into(), Value::Null);
    call.insert("created".into(), json!(iso_micros(created, s.created_us)));
    call.insert("joined".into(), json!(s.joined_ms.map(iso)));
    call.insert("ended".into(), json!(s.ended_ms.map(iso)));
    call.insert("endReason".into(), json!(s.end_reason));
    call.insert("billedDuration".into(), json!(s.billed_ms.map(duration)));
    let tokens = |n: i64| {
        if ended && s.joined_ms.is_some() {
            json!(n)
        } else {
            Value::Null
        }
    };
    call.insert("billedSideInputTokens".into(), tokens(s.tokens.0));
    call.insert("billedSideOutputTokens".into(), tokens(s.tokens.1));
    call.insert("billingStatus".into(), json!(s.billing_status));
    call.insert("firstSpeaker".into(), json!("FIRST_SPEAKER_AGENT"));
    call.insert("firstSpeakerSettings".into(), json!({"agent": {}}));
    call.insert("initialOutputMedium".into(), json!("MESSAGE_MEDIUM_VOICE"));
    call.insert("joinUrl".into(), Value::Null);
    call.insert("joinTimeout".into(), json!("30s"));
    call.insert("maxDuration".into(), json!("3600s"));
    call.insert("medium".into(), s.medium.clone());
    call.insert("model".into(), json!("ultravox-v0.7"));
    call.insert("recordingEnabled".into(), json!(s.recording));
    call.insert("retentionPolicy".into(), json!("retain"));
    call.insert(
        "systemPrompt".into(),
        json!("You are a friendly support agent. Verify the caller before discussing an account."),
    );
    call.insert("temperature".into(), json!(0.4));
    call.insert("languageHint".into(), json!("en"));
    call.insert("timeExceededMessage".into(), Value::Null);
    call.insert("voice".into(), json!("Mark"));
    call.insert("transcriptOptional".into(), json!(true));
    call.insert("shortSummary".into(), json!(s.short_summary));
    call.insert("summary".into(), json!(s.summary));
    call.insert(
        "agent".into(),
        json!({"agentId": agent_id, "name": agent_name(slot)}),
    );
    call.insert("agentId".into(), json!(agent_id));
    call.insert("experimentalSettings".into(), Value::Null);
    call.insert(
        "metadata".into(),
        json!({"campaign": pick(&mut rng, &["spring", "renewals", "support"]), "label": renderer.label(slot.index)}),
    );
    call.insert("initialState".into(), json!({}));
    call.insert("requestContext".into(), Value::Null);
    call.insert(
        "sipDetails".into(),
        if s.sip {
            json!({
                "billedDuration": s.billed_ms.map(duration),
                "terminationReason": ended.then_some("SIP_TERMINATION_NORMAL"),
            })
        } else {
            Value::Null
        },
    );
    Value::Object(call)
}

/// What `/api/deleted_calls` says of a deleted call.
pub(super) fn tombstone(renderer: &Renderer, deleted: DeletedCall) -> Value {
    let slot = deleted.slot;
    let s = shape(renderer, slot);
    json!({
        "callId": renderer.call_id(slot.index),
        "accountId": account_id(renderer),
        "created": iso_micros(slot.meta.created_ms, s.created_us),
        "deletionTime": iso(deleted.deleted_ms),
        "joined": s.joined_ms.map(iso),
        "ended": s.ended_ms.map(iso),
        "maxDuration": "3600s",
        "endReason": s.end_reason,
        "recordingEnabled": s.recording,
        "hadSummary": s.summary.is_some(),
    })
}

/// The one account every call of the data set belongs to.
fn account_id(renderer: &Renderer) -> String {
    let h = renderer.seed;
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (h >> 32) as u32,
        (h >> 16) & 0xFFFF,
        h & 0xFFF,
        (h >> 4) & 0xFFF,
        h & 0xFFFF_FFFF_FFFF
    )
}

/// A stage id, UUID-shaped like Ultravox's.
fn stage_id(renderer: &Renderer, slot: CallSlot, stage: u32) -> String {
    let h = renderer
        .rng(slot.index, SALT ^ 0x57A6 ^ u64::from(stage))
        .random::<u128>();
    format!(
        "{:08x}-{:04x}-4{:03x}-9{:03x}-{:012x}",
        (h >> 96) as u32,
        (h >> 80) as u16,
        (h >> 64) as u16 & 0xFFF,
        (h >> 48) as u16 & 0xFFF,
        h as u64 & 0xFFFF_FFFF_FFFF
    )
}

/// The call's messages so far, in order, each with its stage; and the last stage. User and
/// agent alternate, the agent first; now and then the agent calls a tool and gets its result.
/// A running call has said half of what it will; a call that never joined said nothing.
pub(super) fn messages(renderer: &Renderer, slot: CallSlot) -> (Vec<(u32, Value)>, u32) {
    let s = shape(renderer, slot);
    let (Some(joined), true) = (s.joined_ms, s.messages > 0) else {
        return (Vec::new(), 0);
    };
    let talk_ms = s.ended_ms.map_or(300_000, |e| e - joined);
    let said = if s.ended_ms.is_some() {
        s.messages
    } else {
        s.messages / 2
    };
    let second_stage_from = if s.two_stages {
        s.messages / 2
    } else {
        usize::MAX
    };
    let mut rng = renderer.rng(slot.index, SALT ^ 0x7E47);
    let step = talk_ms / (s.messages as i64 + 1);
    let mut out = Vec::with_capacity(said * 2);
    let mut index_in_stage = 0u32;
    let mut last_stage = 0;
    for k in 0..said {
        let stage = u32::from(k >= second_stage_from);
        if stage != last_stage {
            last_stage = stage;
            index_in_stage = 0;
        }
        let start = step * k as i64 + rng.random_range(0..500);
        let end = start + step * rng.random_range(40..90) / 100;
        let agent = k % 2 == 0;
        let text = if agent {
            pick(&mut rng, &SUMMARIES).to_string()
        } else {
            format!("Hi, this is {}.", pick(&mut rng, &NAMES))
        };
        let tool = agent && rng.random_bool(0.25);
        let stage_id = stage_id(renderer, slot, stage);
        let mut push = |message: Map<String, Value>, index_in_stage: &mut u32| {
            let mut message = message;
            message.insert("callStageId".into(), json!(stage_id));
            // Proto3 JSON leaves defaults out: the first message of a stage has no index.
            if *index_in_stage > 0 {
                message.insert("callStageMessageIndex".into(), json!(*index_in_stage));
            }
            *index_in_stage += 1;
            out.push((stage, Value::Object(message)));
        };
        let mut spoken = Map::new();
        spoken.insert(
            "role".into(),
            json!(if agent {
                "MESSAGE_ROLE_AGENT"
            } else {
                "MESSAGE_ROLE_USER"
            }),
        );
        spoken.insert("text".into(), json!(text));
        spoken.insert("medium".into(), json!("MESSAGE_MEDIUM_VOICE"));
        spoken.insert(
            "timespan".into(),
            json!({"start": duration(start), "end": duration(end)}),
        );
        spoken.insert(
            "wallClockTimespan".into(),
            json!({"start": duration(start + 20), "end": duration(end + 35)}),
        );
        push(spoken, &mut index_in_stage);
        if tool {
            let (name, _) = pick(&mut rng, &TOOLS);
            let invocation = format!("inv_{:012x}", rng.random::<u64>() & 0xFFFF_FFFF_FFFF);
            let account = rng.random_range(1000..9999);
            let mut call = Map::new();
            call.insert("role".into(), json!("MESSAGE_ROLE_TOOL_CALL"));
            call.insert(
                "text".into(),
                json!(json!({ "account": format!("AC-{account}") }).to_string()),
            );
            call.insert("invocationId".into(), json!(invocation));
            call.insert("toolName".into(), json!(name));
            call.insert(
                "timespan".into(),
                json!({"start": duration(end), "end": duration(end)}),
            );
            push(call, &mut index_in_stage);
            let mut result = Map::new();
            result.insert("role".into(), json!("MESSAGE_ROLE_TOOL_RESULT"));
            result.insert(
                "text".into(),
                json!(format!(
                    "{{\"status\":\"ok\",\"account\":\"AC-{account}\"}}"
                )),
            );
            result.insert("invocationId".into(), json!(invocation));
            result.insert("toolName".into(), json!(name));
            push(result, &mut index_in_stage);
        }
    }
    (out, last_stage)
}
