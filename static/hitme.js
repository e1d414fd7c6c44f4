// HitMe's embeddable counter. One line on a page counts it:
//
//   <script async src="https://hitme.example.com/hitme.js"></script>
//
// The page is location.href without its fragment, or the script tag's data-url. Elements with
// data-hitme-count="all_time|last_month|last_week|last_day|last_hour|last_minute" (and an
// optional data-url) get their text set to that count; reading counts from another origin
// needs that origin in HitMe's --cors-origins. With data-metric="visits" an element shows
// that count of visits instead of hits (HitMe run with --visits; otherwise it is left as it
// is). The script never throws into the page, and counts once per page load however many
// times it is included.
//
// A site owner's own visits need not be counted: in a browser where localStorage.hitme_ignore
// is set (to anything but ""), the script sends no hit, though it still fills the counts. Run
// once in that browser's console, on the site's origin:
//
//   localStorage.hitme_ignore = "1"
//
// and `localStorage.removeItem("hitme_ignore")` to be counted again.
//
// The hit carries document.referrer, from which HitMe started with --sources counts where
// visitors come from (only the referrer's host is kept).
(function () {
  "use strict";
  try {
    if (window.__hitmeCounted) return;
    window.__hitmeCounted = true;
    var script = document.currentScript;
    if (!script || !script.src) return;
    var server = new URL(script.src).origin;
    var page = script.getAttribute("data-url") || location.href.split("#")[0];
    // src=js marks the hits of this script, whose bots (crawlers, headless browsers) HitMe
    // leaves uncounted.
    var body = new URLSearchParams({ url: page, src: "js" });
    // Where the visitor came from, for HitMe's --sources (ignored without it). A reload or a
    // step back keeps the first load's referrer: it is no new arrival from there.
    var navigation = window.performance && performance.getEntriesByType
      ? performance.getEntriesByType("navigation")[0] : null;
    if (document.referrer && (!navigation || navigation.type === "navigate")) {
      body.set("referrer", document.referrer);
    }

    // localStorage throws where storage is blocked (some privacy settings, sandboxed frames):
    // such a browser cannot have been told to be ignored.
    var ignored = function () {
      try {
        return Boolean(window.localStorage.getItem("hitme_ignore"));
      } catch (e) {
        return false;
      }
    };

    // The count an element asks for: of hits, or with data-metric="visits" of the `visits`
    // object HitMe adds with --visits (undefined without it, so the element is left alone).
    var countOf = function (el, counts) {
      var metric = el.getAttribute("data-metric") || "hits";
      var source = metric === "hits" ? counts : metric === "visits" ? counts && counts.visits : null;
      return source && source[el.getAttribute("data-hitme-count")];
    };

    var fillCounts = function () {
      var elements = document.querySelectorAll("[data-hitme-count]");
      Array.prototype.forEach.call(elements, function (el) {
        var url = el.getAttribute("data-url") || page;
        fetch(server + "/hit?" + new URLSearchParams({ url: url }), { cache: "no-store" })
          .then(function (r) { return r.ok ? r.json() : null; })
          .then(function (counts) {
            var n = countOf(el, counts);
            if (typeof n === "number") el.textContent = n.toLocaleString();
          })
          .catch(function () {});
      });
    };

    var send = function () {
      if (ignored()) {
        fillCounts();
      } else if (document.querySelector("[data-hitme-count]")) {
        // The page shows counts: send the hit with fetch so that they are read once it is
        // in (a form POST is a CORS-simple request: it is sent, and counted, even where the
        // page may not read the answer).
        post().then(fillCounts);
      } else if (!(navigator.sendBeacon && navigator.sendBeacon(server + "/hit", body))) {
        post();
      }
    };
    var post = function () {
      return fetch(server + "/hit", { method: "POST", body: body, keepalive: true, mode: "no-cors" })
        .catch(function () {});
    };
    // An async script may run before the page's elements are parsed.
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", send);
    } else {
      send();
    }
  } catch (e) {
    // A counter must never break the page it counts.
  }
})();
