//! Known crawlers, link checkers and headless browsers, by their `User-Agent`: their loads of
//! the pixel, of a counting badge and of `hitme.js` are answered as usual but not counted
//! (`--count-bots` counts them). The patterns are the `isbot` crate's, less `^curl`: a person
//! may well load a pixel with curl. Clients posting to `/hit` themselves are never filtered.

/// The filter, or none with `--count-bots`.
pub(crate) struct Bots(Option<isbot::Bots>);

impl Bots {
    pub(crate) fn new(count_bots: bool) -> Bots {
        Bots((!count_bots).then(|| {
            let mut bots = isbot::Bots::default();
            bots.remove(&["^curl"]);
            bots
        }))
    }

    /// Whether a request with this `User-Agent` comes from a bot and must not count.
    pub(crate) fn is_bot(&self, user_agent: Option<&str>) -> bool {
        match (&self.0, user_agent) {
            (Some(bots), Some(agent)) => bots.is_bot(agent),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crawlers_and_headless_browsers_are_bots_and_people_are_not() {
        let bots = Bots::new(false);
        for agent in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0 Safari/537.36",
            "W3C-checklink/4.81 libwww-perl/6.76",
        ] {
            assert!(bots.is_bot(Some(agent)), "{agent}");
        }
        for agent in [
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
            "curl/8.5.0",
        ] {
            assert!(!bots.is_bot(Some(agent)), "{agent}");
        }
        assert!(!bots.is_bot(None));
        assert!(!Bots::new(true).is_bot(Some("Googlebot/2.1")));
    }
}
