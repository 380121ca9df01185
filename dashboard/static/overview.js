// The overview (templates/overview/index.html) kept up to date without a reload: every few seconds it asks
// /overview/live and puts each section the answer renders in place of the one shown, only where it
// changed (a form being filled in is left alone: the sections hold none). A failed ask is tried again at
// the next turn; a sign-in that ended (the answer is the sign-in page, not JSON) stops the asking. A tab
// in the background does not ask; it catches up at the first turn after it is shown again.
(function () {
  "use strict";
  var root = document.getElementById("overview");
  if (!root || !window.fetch) return;
  var live = root.getAttribute("data-live");
  var every = (Number(root.getAttribute("data-every")) || 5) * 1000;
  var asking = false;
  var stopped = false;

  function put(html) {
    Object.keys(html).forEach(function (name) {
      var section = root.querySelector('[data-section="' + name + '"]');
      if (section && section.innerHTML.trim() !== html[name].trim()) section.innerHTML = html[name];
    });
    root.setAttribute("data-updated", String(Date.now()));
  }

  function ask() {
    if (asking || stopped || document.hidden) return; // a tab in the background asks nothing
    asking = true;
    fetch(live, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        var json = (r.headers.get("Content-Type") || "").indexOf("application/json") === 0;
        if (!r.ok || !json) {
          if (r.redirected || r.status === 403) stopped = true;
          return null;
        }
        return r.json();
      })
      .then(function (data) {
        if (data && data.html) put(data.html);
      })
      .catch(function () {
        /* the appliance is restarting or the network hiccuped: next turn */
      })
      .then(function () {
        asking = false;
      });
  }

  window.setInterval(ask, every);
})();
