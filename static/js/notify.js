// "Notify me when my videos are ready": a browser notification when one of the
// person's own jobs finishes, and "(N) " in the tab title for those finished since
// they last looked. Off until the person turns it on; the permission is asked only
// on that click, never again after a refusal. No inline code: a strict CSP holds.
//
// One notification per job however many tabs are open: only the tab holding the Web
// Lock "soraweb-notify" polls and notifies (the lock passes to another tab when it
// closes). The cursor and the unseen count live in localStorage, so every tab shows
// the same count and a new leader goes on where the last one stopped.
(function () {
  "use strict";

  var button = document.getElementById("notify-toggle");
  if (!button || !window.localStorage) {
    return;
  }
  var state = document.getElementById("notify-state");
  var endpoint = button.getAttribute("data-endpoint");
  var prefix = "soraweb.notify." + button.getAttribute("data-user") + ".";
  var KEY_ON = prefix + "on";
  var KEY_CURSOR = prefix + "cursor";
  var KEY_UNSEEN = prefix + "unseen";
  var supported = "Notification" in window;
  var baseTitle = document.title;
  var pollMs = { visible: 10000, hidden: 30000 };
  var queued = false;

  function enabled() {
    return localStorage.getItem(KEY_ON) === "on";
  }

  function unseen() {
    return parseInt(localStorage.getItem(KEY_UNSEEN) || "0", 10) || 0;
  }

  function showTitle() {
    var count = enabled() ? unseen() : 0;
    document.title = count ? "(" + count + ") " + baseTitle : baseTitle;
  }

  function looked() {
    // The person is looking at a soraweb tab: whatever finished has been seen.
    if (!document.hidden && unseen()) {
      localStorage.setItem(KEY_UNSEEN, "0");
    }
    showTitle();
  }

  function showButton() {
    var on = enabled();
    button.hidden = false;
    button.setAttribute("aria-pressed", on ? "true" : "false");
    if (!on) {
      state.textContent = "";
    } else if (supported && Notification.permission === "granted") {
      state.textContent = "On";
    } else {
      state.textContent = "On, but this browser blocks notifications: only the tab title counts.";
    }
  }

  function notify(job) {
    if (!supported || Notification.permission !== "granted") {
      return;
    }
    var options = { body: job.body, tag: "soraweb-job-" + job.id };
    if (job.icon) {
      options.icon = job.icon;
    }
    var note = new Notification(job.title, options);
    note.addEventListener("click", function () {
      window.focus();
      window.location.href = job.url;
      note.close();
    });
  }

  function take(data) {
    if (data.poll) {
      pollMs = { visible: data.poll.visible * 1000, hidden: data.poll.hidden * 1000 };
    }
    if (!enabled()) {
      return;
    }
    localStorage.setItem(KEY_CURSOR, data.cursor);
    if (data.jobs.length) {
      data.jobs.forEach(notify);
      localStorage.setItem(KEY_UNSEEN, String(unseen() + data.jobs.length));
      looked();
    }
  }

  function poll() {
    if (!enabled()) {
      return Promise.resolve();
    }
    var cursor = localStorage.getItem(KEY_CURSOR);
    var url = endpoint + (cursor ? "?since=" + encodeURIComponent(cursor) : "");
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        // Signed out (a redirect to the sign-in page) or a server error: try again later.
        var json = (response.headers.get("Content-Type") || "").indexOf("application/json") === 0;
        return response.ok && json ? response.json() : null;
      })
      .then(function (data) {
        if (data) {
          take(data);
        }
      })
      .catch(function () {});
  }

  function lead() {
    function loop() {
      poll().then(function () {
        window.setTimeout(loop, document.hidden ? pollMs.hidden : pollMs.visible);
      });
    }
    loop();
    // Held until this tab closes; then the next tab in the queue leads.
    return new Promise(function () {});
  }

  function start() {
    if (queued) {
      return;
    }
    queued = true;
    if (navigator.locks) {
      navigator.locks.request("soraweb-notify", lead);
    } else {
      // Without Web Locks every tab polls; the shared cursor makes a repeat unlikely, not impossible.
      lead();
    }
  }

  function turnOn() {
    // A fresh start: tell only of jobs that finish from now on.
    localStorage.removeItem(KEY_CURSOR);
    localStorage.setItem(KEY_UNSEEN, "0");
    localStorage.setItem(KEY_ON, "on");
    showButton();
    start();
  }

  button.addEventListener("click", function () {
    if (enabled()) {
      localStorage.setItem(KEY_ON, "off");
      showButton();
      showTitle();
      return;
    }
    if (supported && Notification.permission === "default") {
      Notification.requestPermission().then(turnOn, turnOn);
    } else {
      turnOn();
    }
  });

  // Another tab turned it on or off, or counted a finished job.
  window.addEventListener("storage", function (event) {
    if (!event.key || event.key.indexOf(prefix) !== 0) {
      return;
    }
    if (event.key === KEY_ON) {
      showButton();
      if (enabled()) {
        start();
      }
    }
    looked();
  });
  document.addEventListener("visibilitychange", looked);
  window.addEventListener("focus", looked);

  showButton();
  looked();
  // Every tab queues for the lock, so one always leads even if it is turned on later elsewhere.
  if (enabled()) {
    start();
  }
})();
