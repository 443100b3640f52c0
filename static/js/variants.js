// Variants and estimates: the form's "usually ready in" line, progress bars that never run
// backwards, and the group page's one control for every variant. No inline code (strict CSP).
(function () {
  "use strict";

  function minutesText(seconds) {
    return Math.max(1, Math.round(seconds / 60)) + " min";
  }

  // --- The create form's estimate -------------------------------------------
  // Every combination's figures were rendered once into data-estimates; nothing is fetched.
  function setUpEstimate(line) {
    var form = line.closest("form");
    var table = JSON.parse(line.getAttribute("data-estimates") || "{}");
    var unit = line.getAttribute("data-cost-unit") || "";
    function picked(name, fallback) {
      var checked = form.querySelector('input[name="' + name + '"]:checked');
      return checked ? checked.value : fallback;
    }
    function update() {
      var ratio = picked("aspect_ratio", "16:9");
      var entry = table[picked("model", "openAiSora2Plus") + "|" + picked("duration", "8") + "|" + ratio];
      var count = parseInt(picked("variants", "1"), 10) || 1;
      // An earlier image fitted for the other orientation cannot be reused (the server says so too).
      form.querySelectorAll("[data-aspect]").forEach(function (label) {
        var radio = label.querySelector("input");
        var fits = label.getAttribute("data-aspect") === ratio;
        label.classList.toggle("choice--unfit", !fits);
        if (!fits && radio.checked) {
          radio.checked = false;
          var none = form.querySelector('input[name="reuse_reference"][value=""]');
          if (none) { none.checked = true; }
        }
        radio.disabled = !fits;
      });
      if (!entry) {
        return;
      }
      var text = (entry.learned ? "Usually ready" : "Likely ready (a first guess until the team has history)") +
        " in about " + minutesText(entry.seconds) + ". ";
      if (entry.cost === null) {
        text += "Expected cost: unknown yet.";
      } else {
        var each = parseFloat(entry.cost);
        text += "Expected cost: " + (each * count).toFixed(2) + " " + unit +
          (count > 1 ? " (" + each.toFixed(2) + " each)" : "") + ".";
      }
      line.textContent = text;
    }
    form.addEventListener("change", update);
    update();
  }

  // --- Progress ----------------------------------------------------------------
  // data-started (epoch seconds) and data-estimate (seconds): the bar fills toward 95 %, never
  // runs backwards (a poll re-renders the card: the furthest value shown is kept per job),
  // and past the estimate it says so instead of claiming 100 %.
  var CAP = 0.95;
  var furthest = {};

  function tick() {
    var now = Date.now() / 1000;
    document.querySelectorAll("[data-progress]").forEach(function (box) {
      var started = parseFloat(box.getAttribute("data-started"));
      var estimate = parseFloat(box.getAttribute("data-estimate"));
      var key = box.getAttribute("data-progress");
      var bar = box.querySelector("progress");
      var text = box.querySelector(".progress__text");
      if (!bar || !(estimate > 0) || isNaN(started)) {
        return;
      }
      var elapsed = Math.max(0, now - started);
      var fraction = Math.max(furthest[key] || 0, Math.min(CAP, elapsed / estimate));
      furthest[key] = fraction;
      bar.value = Math.round(fraction * 100);
      text.textContent = elapsed > estimate
        ? "Taking longer than usual"
        : "About " + minutesText(estimate - elapsed) + " left";
      bar.setAttribute("aria-valuetext", bar.value + "%, " + text.textContent.toLowerCase());
    });
  }

  // --- The group page: one control for every variant --------------------------
  // The videos are looked up on every use: while variants finish, the list is swapped in anew.
  function setUpGroupPlayer(box) {
    var button = box.querySelector("[data-group-play]");
    var seek = box.querySelector("[data-group-seek]");
    var clock = box.querySelector("[data-group-time]");
    function videos() {
      return Array.prototype.slice.call(document.querySelectorAll("video[data-variant]"));
    }
    function longest() {
      return Math.max.apply(null, [0].concat(videos().map(function (v) { return v.duration || 0; })));
    }
    function playing() {
      return videos().some(function (v) { return !v.paused && !v.ended; });
    }
    function show() {
      var all = videos();
      box.hidden = !all.length;
      if (!all.length) {
        return;
      }
      var total = longest();
      var at = all[0].currentTime;
      if (total) {
        seek.value = String(Math.round((at / total) * 1000));
      }
      seek.setAttribute("aria-valuetext", at.toFixed(1) + " of " + total.toFixed(1) + " seconds");
      clock.textContent = at.toFixed(1) + " / " + total.toFixed(1) + " s";
      button.textContent = playing() ? "Pause all" : "Play all";
      button.setAttribute("aria-pressed", playing() ? "true" : "false");
    }
    function listen() {
      videos().forEach(function (v) {
        if (v.hasAttribute("data-synced")) {
          return;
        }
        v.setAttribute("data-synced", "");
        v.muted = true; // Several soundtracks at once would be noise; each keeps its own controls.
        ["play", "pause", "timeupdate", "loadedmetadata", "ended"].forEach(function (name) {
          v.addEventListener(name, show);
        });
      });
      show();
    }
    button.addEventListener("click", function () {
      var all = videos();
      if (playing()) {
        all.forEach(function (v) { v.pause(); });
      } else {
        var at = all[0] && !all[0].ended ? all[0].currentTime : 0;
        all.forEach(function (v) {
          v.currentTime = Math.min(at, v.duration || at);
          var started = v.play();
          if (started && started.catch) { started.catch(function () {}); }
        });
      }
      show();
    });
    seek.addEventListener("input", function () {
      var at = (parseInt(seek.value, 10) / 1000) * longest();
      videos().forEach(function (v) { v.currentTime = Math.min(at, v.duration || at); });
      show();
    });
    document.addEventListener("htmx:afterSettle", listen);
    listen();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-estimates]").forEach(setUpEstimate);
    document.querySelectorAll("[data-group-player]").forEach(setUpGroupPlayer);
    tick();
    window.setInterval(tick, 1000);
  });
  // A swapped-in card shows its bar at once, not a second later.
  document.addEventListener("htmx:afterSettle", tick);
})();
