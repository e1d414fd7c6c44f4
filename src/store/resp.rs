//! RESP, the Redis protocol: encoding the commands HitMe sends into a reused buffer, so that
//! recording a hit formats its keys without allocating.

/// Starts a command of `args` arguments (the command name counts as one).
pub(crate) fn command(buf: &mut Vec<u8>, args: usize) {
    buf.push(b'*');
    buf.extend_from_slice(itoa::Buffer::new().format(args).as_bytes());
    buf.extend_from_slice(b"\r\n");
}

/// Appends one argument made of `parts` joined together.
pub(crate) fn arg(buf: &mut Vec<u8>, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    buf.push(b'$');
    buf.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
    buf.extend_from_slice(b"\r\n");
    for part in parts {
        buf.extend_from_slice(part);
    }
    buf.extend_from_slice(b"\r\n");
}

/// Appends a whole command whose arguments are single byte strings.
pub(crate) fn simple(buf: &mut Vec<u8>, args: &[&[u8]]) {
    command(buf, args.len());
    for a in args {
        arg(buf, &[a]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_redis_rs() {
        let mut buf = Vec::new();
        command(&mut buf, 4);
        arg(&mut buf, &[b"HINCRBY"]);
        arg(&mut buf, &[b"hits", b":", b"day", b":", b"-259200000"]);
        arg(&mut buf, &[b"http://a.b/"]);
        arg(&mut buf, &[b"1"]);
        simple(&mut buf, &[b"EXEC"]);
        let expected = redis::pipe()
            .cmd("HINCRBY")
            .arg("hits:day:-259200000")
            .arg("http://a.b/")
            .arg(1)
            .cmd("EXEC")
            .get_packed_pipeline();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }
}
