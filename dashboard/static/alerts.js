// The live alert banner on every staff page (base.html): asks /alerts/live every second and shows the
// open alerts, newest first, in their severity's colour, each with Acknowledge (a POST with the page's
// CSRF token; the banner then asks again). A new alert plays a short beep: browsers let a page make sound
// only after someone has clicked or typed in it, so until then the banner says how to turn it on and
// stays silent. Alerts already heard on another page of this tab do not beep again.
// Below the alerts, the children's asks to use a blocked site (from the block page), each with Grant for
// 15, 30 or 60 minutes or until closing, and Refuse (POSTs with the CSRF token, like Acknowledge); a new
// ask beeps once too.
(function () {
  "use strict";
  var banner = document.getElementById("alert-banner");
  if (!banner || !window.fetch) return;
  var list = document.getElementById("alert-list");
  var title = document.getElementById("alert-banner-title");
  var sound = document.getElementById("alert-sound");
  var announce = document.getElementById("alert-announce");
  var askPart = document.getElementById("ask-part");
  var askList = document.getElementById("ask-list");
  var askTitle = document.getElementById("ask-title");
  var shownAsks = "";
  var live = banner.getAttribute("data-live");
  var csrf = banner.getAttribute("data-csrf");
  var EVERY_MS = 1000;
  var shown = "";
  var asking = false;
  var stopped = false;
  var audio = null;

  function heard(key) {
    try {
      return JSON.parse(sessionStorage.getItem(key || "alerts-heard") || "[]");
    } catch (e) {
      return [];
    }
  }

  function remember(ids, key) {
    try {
      sessionStorage.setItem(key || "alerts-heard", JSON.stringify(ids.slice(-200)));
    } catch (e) {
      /* private mode: every page beeps once for what is open */
    }
  }

  // Sound: an AudioContext made (or resumed) in a click or key press may play; before that, none.
  function soundOn() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    try {
      if (!audio) audio = new Context();
      var resumed = audio.state === "suspended" ? audio.resume() : null;
      var said = function () {
        if (audio.state === "running") sound.textContent = "Sound on";
      };
      if (resumed && resumed.then) resumed.then(said, function () {});
      else said();
    } catch (e) {
      audio = null; // no sound on this browser: the banner alone
    }
  }
  soundOn(); // allowed at once where the browser lets this page play (a click on the page before it)
  document.addEventListener("click", soundOn, true);
  document.addEventListener("keydown", soundOn, true);

  function beep(severity) {
    if (!audio || audio.state !== "running") return;
    try {
      var high = severity === "critical";
      var start = audio.currentTime;
      [0, 0.25].slice(0, high ? 2 : 1).forEach(function (offset) {
        var tone = audio.createOscillator();
        var gain = audio.createGain();
        tone.type = "sine";
        tone.frequency.value = high ? 880 : 660;
        gain.gain.setValueAtTime(0.0001, start + offset);
        gain.gain.exponentialRampToValueAtTime(0.3, start + offset + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.2);
        tone.connect(gain).connect(audio.destination);
        tone.start(start + offset);
        tone.stop(start + offset + 0.22);
      });
      // How many times this page has sounded, for whoever looks (the browser tests do).
      sound.setAttribute("data-beeps", String((Number(sound.getAttribute("data-beeps")) || 0) + 1));
    } catch (e) {
      /* silent */
    }
  }

  function text(tag, className, words) {
    var element = document.createElement(tag);
    if (className) element.className = className;
    element.textContent = words;
    return element;
  }

  function link(href, words) {
    var a = text("a", "", words);
    a.href = href;
    return a;
  }

  function item(alert, fresh) {
    var li = text("li", "alert-item alert-" + alert.severity + (fresh ? " alert-fresh" : ""), "");
    li.setAttribute("data-alert", String(alert.id));
    li.appendChild(text("strong", "", alert.severity.toUpperCase()));
    li.appendChild(text("span", "", alert.what));
    li.appendChild(text("span", "", alert.whose));
    li.appendChild(text("span", "", alert.when));
    if (alert.count > 1) li.appendChild(text("span", "", alert.count + " events"));
    li.appendChild(link(alert.url, "Details of alert " + alert.id));
    if (alert.incident_url) li.appendChild(link(alert.incident_url, "Incident " + alert.incident));
    var button = text("button", "", "Acknowledge");
    button.type = "button";
    button.setAttribute("aria-label", "Acknowledge alert " + alert.id + ": " + alert.what + ", " + alert.whose);
    button.addEventListener("click", function () {
      acknowledge(alert, button);
    });
    li.appendChild(button);
    return li;
  }

  // One POST of the banner's (Acknowledge, Grant, Refuse): the CSRF token in the form and the header.
  function post(url, fields) {
    var form = new FormData();
    form.append("csrf_token", csrf);
    Object.keys(fields || {}).forEach(function (name) { form.append(name, fields[name]); });
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": csrf },
      body: form,
    });
  }

  function answer(request, url, fields, li, done) {
    Array.prototype.forEach.call(li.querySelectorAll("button"), function (b) { b.disabled = true; });
    post(url, fields)
      .then(function (response) {
        return response.json().then(function (data) {
          announce.textContent = data.said || done;
          if (!response.ok) throw new Error(String(response.status));
        });
      })
      .catch(function () {
        Array.prototype.forEach.call(li.querySelectorAll("button"), function (b) { b.disabled = false; });
        if (!announce.textContent) announce.textContent = "The answer to " + request.who + " could not be sent: reload the page.";
      })
      .then(function () {
        shownAsks = "";
        ask();
      });
  }

  function askItem(ask, fresh) {
    var li = text("li", "ask-item" + (fresh ? " alert-fresh" : ""), "");
    li.setAttribute("data-ask", String(ask.id));
    li.appendChild(text("strong", "", ask.who));
    li.appendChild(text("span", "", "asks to use " + ask.host + (ask.category ? " (" + ask.category + ")" : "")));
    if (ask.note) li.appendChild(text("q", "", ask.note));
    li.appendChild(text("span", "", ask.when));
    [["15", "Grant 15 minutes"], ["30", "Grant 30 minutes"], ["60", "Grant 60 minutes"], ["closing", "Grant until closing"]]
      .forEach(function (choice) {
        var button = text("button", "", choice[1]);
        button.type = "button";
        button.setAttribute("aria-label", choice[1] + " to " + ask.who + " for " + ask.host);
        button.addEventListener("click", function () {
          answer(ask, ask.grant_url, { minutes: choice[0] }, li, ask.who + " may use " + ask.host + ".");
        });
        li.appendChild(button);
      });
    var refuse = text("button", "", "Refuse");
    refuse.type = "button";
    refuse.setAttribute("aria-label", "Refuse " + ask.who + " " + ask.host);
    refuse.addEventListener("click", function () {
      answer(ask, ask.refuse_url, {}, li, "Refused.");
    });
    li.appendChild(refuse);
    return li;
  }

  function showAsks(asks) {
    var key = JSON.stringify(asks.map(function (a) { return a.id; }));
    if (key === shownAsks) return [];
    shownAsks = key;
    var before = heard("asks-heard");
    var fresh = asks.filter(function (a) { return before.indexOf(a.id) < 0; });
    askList.textContent = "";
    asks.forEach(function (a) { askList.appendChild(askItem(a, fresh.indexOf(a) >= 0)); });
    askTitle.textContent = asks.length === 1 ? "1 ask to use a blocked site" : asks.length + " asks to use a blocked site";
    askPart.hidden = asks.length === 0;
    if (fresh.length) remember(before.concat(fresh.map(function (a) { return a.id; })), "asks-heard");
    return fresh;
  }

  function show(data) {
    var alerts = data.alerts || [];
    var asks = data.asks || [];
    var freshAsks = askList ? showAsks(asks) : [];
    if (freshAsks.length) {
      beep("medium");
      announce.textContent = "New ask: " + freshAsks.map(function (a) { return a.who + " asks to use " + a.host; }).join("; ");
    }
    banner.hidden = alerts.length === 0 && asks.length === 0;
    var key = JSON.stringify(alerts.map(function (a) { return [a.id, a.count, a.incident]; }));
    if (key === shown) return;
    shown = key;
    var before = heard();
    var fresh = alerts.filter(function (a) { return before.indexOf(a.id) < 0; });
    list.textContent = "";
    alerts.forEach(function (a) { list.appendChild(item(a, fresh.indexOf(a) >= 0)); });
    var n = alerts.length;
    title.textContent = n === 1 ? "1 open alert" : n === 0 ? "No open alerts" : (data.more ? "More than " + n : n) + " open alerts";
    title.hidden = n === 0; // the banner open for asks alone says nothing of alerts
    if (fresh.length) {
      beep(fresh.some(function (a) { return a.severity === "critical"; }) ? "critical" : fresh[0].severity);
      announce.textContent = "New alert: " + fresh.map(function (a) {
        return a.severity + ", " + a.what + ", " + a.whose;
      }).join("; ");
      remember(before.concat(fresh.map(function (a) { return a.id; })));
    }
  }

  function ask() {
    if (asking || stopped) return;
    asking = true;
    fetch(live, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        var json = (response.headers.get("Content-Type") || "").indexOf("application/json") === 0;
        if (response.redirected || !json) {
          stopped = true; // signed out (sent to the sign-in page): the next page shows it
          return null;
        }
        return response.ok ? response.json() : null;
      })
      .then(function (data) {
        if (data) show(data);
      })
      .catch(function () {
        /* the dashboard did not answer this time: ask again next second */
      })
      .then(function () {
        asking = false;
      });
  }

  function acknowledge(alert, button) {
    button.disabled = true;
    post(alert.acknowledge_url, {})
      .then(function (response) {
        if (!response.ok) throw new Error(String(response.status));
        announce.textContent = "Alert " + alert.id + " acknowledged.";
      })
      .catch(function () {
        button.disabled = false;
        announce.textContent = "Alert " + alert.id + " could not be acknowledged: reload the page and try again.";
      })
      .then(function () {
        shown = "";
        ask();
      });
  }

  ask();
  setInterval(ask, EVERY_MS);
})();
