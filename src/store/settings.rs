//! The settings a key prefix was written with, kept under `<prefix>:config`, so that two
//! HitMes cutting buckets differently (another time zone or week start) never write under
//! one prefix: the first to start records its own, and the others must match them.

use redis::{Cmd, Value};

use super::StoreError;

/// `<prefix>:config`, the hash of recorded settings; the same name in both layouts.
pub(crate) fn key(prefix: &str) -> String {
    format!("{prefix}:config")
}

/// The commands that record each of `settings` (name, value) unless one is recorded already
/// (`HSETNX`), then read back what is recorded (`HMGET`, the last command's reply). Setting
/// field by field is atomic enough: two HitMes starting at once both read back the first's.
pub(crate) fn claim_commands(key: &str, settings: &[(&str, &str)]) -> Vec<Cmd> {
    let mut commands: Vec<Cmd> = settings
        .iter()
        .map(|(name, value)| {
            redis::cmd("HSETNX")
                .arg(key)
                .arg(*name)
                .arg(*value)
                .to_owned()
        })
        .collect();
    let mut read = redis::cmd("HMGET");
    read.arg(key);
    for (name, _) in settings {
        read.arg(*name);
    }
    commands.push(read);
    commands
}

/// The recorded values from the replies of [`claim_commands`], in the order of the settings.
pub(crate) fn claimed(replies: Vec<Value>) -> redis::RedisResult<Vec<String>> {
    let last = replies.into_iter().last().unwrap_or(Value::Nil);
    let values: Vec<Option<String>> = redis::from_redis_value(last.extract_error()?)?;
    Ok(values.into_iter().map(Option::unwrap_or_default).collect())
}

/// Why the recorded settings could not be checked or do not match.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// Redis could not be asked; try again later.
    Unavailable(StoreError),
    /// Another HitMe wrote under this prefix with other settings: what to tell the operator.
    Mismatch(String),
}

/// Records `settings` under `prefix` (through `claim`, one of the stores' `claim_settings`)
/// or checks them against those recorded.
pub(crate) fn check(
    prefix: &str,
    settings: &[(&str, &str)],
    claim: impl FnOnce(&[(&str, &str)]) -> Result<Vec<String>, StoreError>,
) -> Result<(), Refusal> {
    let recorded = claim(settings).map_err(Refusal::Unavailable)?;
    let differ: Vec<String> = settings
        .iter()
        .zip(&recorded)
        .filter(|((_, wanted), recorded)| wanted != recorded)
        .map(|((name, wanted), recorded)| {
            format!(
                "--{} {recorded} (this HitMe: {wanted})",
                name.replace('_', "-")
            )
        })
        .collect();
    if differ.is_empty() {
        return Ok(());
    }
    let rankings_differ = settings
        .iter()
        .zip(&recorded)
        .any(|((name, wanted), recorded)| *name == "rankings" && wanted != recorded);
    let why = match rankings_differ {
        false => "buckets cut another way would not line up with them".to_string(),
        true => format!(
            "in cluster mode rankings are kept by every HitMe of a key prefix or by none, or \
             the kept ones fall short of the counts (to change it, stop every HitMe and remove \
             the record: HDEL {} rankings {})",
            key(prefix),
            crate::store::cluster::RANKINGS_SINCE
        ),
    };
    Err(Refusal::Mismatch(format!(
        "the hits under --key-prefix {prefix} were counted with {}: {why}. Start HitMe with \
         the same flags, or give it another --key-prefix (the record is the hash {})",
        differ.join(" and "),
        key(prefix)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(values: &[Option<&str>]) -> Vec<Value> {
        let values = values
            .iter()
            .map(|v| v.map_or(Value::Nil, |v| Value::BulkString(v.as_bytes().to_vec())))
            .collect();
        vec![Value::Int(0), Value::Array(values)]
    }

    #[test]
    fn commands_set_missing_fields_then_read_them() {
        let packed: Vec<Vec<u8>> = claim_commands("hits:config", &[("time_zone", "UTC")])
            .iter()
            .map(Cmd::get_packed_command)
            .collect();
        assert_eq!(
            packed,
            [
                b"*4\r\n$6\r\nHSETNX\r\n$11\r\nhits:config\r\n$9\r\ntime_zone\r\n$3\r\nUTC\r\n"
                    .to_vec(),
                b"*3\r\n$5\r\nHMGET\r\n$11\r\nhits:config\r\n$9\r\ntime_zone\r\n".to_vec(),
            ]
        );
        assert_eq!(claimed(reply(&[Some("UTC"), None])).unwrap(), ["UTC", ""]);
    }

    #[test]
    fn a_mismatch_names_both_values_and_the_fix() {
        let settings = [("time_zone", "UTC"), ("week_start", "monday")];
        let recorded = |values: &'static [&'static str]| {
            move |_: &[(&str, &str)]| Ok(values.iter().map(|v| v.to_string()).collect())
        };
        assert!(check("hits", &settings, recorded(&["UTC", "monday"])).is_ok());
        let Err(Refusal::Mismatch(message)) = check(
            "site1",
            &settings,
            recorded(&["America/New_York", "monday"]),
        ) else {
            panic!("a mismatch")
        };
        assert_eq!(
            message,
            "the hits under --key-prefix site1 were counted with --time-zone America/New_York \
             (this HitMe: UTC): buckets cut another way would not line up with them. Start \
             HitMe with the same flags, or give it another --key-prefix (the record is the \
             hash site1:config)"
        );
    }
}
