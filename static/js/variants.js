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
  function setUpGroupPlayer(box) {
    var videos = Array.prototype.slice.call(document.querySelectorAll("video[data-variant]"));
    var button = box.querySelector("[data-group-play]");
    var seek = box.querySelector("[data-group-seek]");
    var clock = box.querySelector("[data-group-time]");
    if (!videos.length) {
      box.hidden = true;
      return;
    }
    var lead = videos[0];
    var seeking = false;
    function longest() {
      return Math.max.apply(null, videos.map(function (v) { return v.duration || 0; }));
    }
    function playing() {
      return videos.some(function (v) { return !v.paused && !v.ended; });
    }
    function show() {
      var total = longest();
      if (!seeking && total) {
        seek.value = String(Math.round((lead.currentTime / total) * 1000));
      }
      clock.textContent = lead.currentTime.toFixed(1) + " / " + total.toFixed(1) + " s";
      button.textContent = playing() ? "Pause all" : "Play all";
      button.setAttribute("aria-pressed", playing() ? "true" : "false");
    }
    button.addEventListener("click", function () {
      if (playing()) {
        videos.forEach(function (v) { v.pause(); });
      } else {
        var at = lead.ended ? 0 : lead.currentTime;
        videos.forEach(function (v) {
          v.currentTime = Math.min(at, v.duration || at);
          var started = v.play();
          if (started && started.catch) { started.catch(function () {}); }
        });
      }
      show();
    });
    seek.addEventListener("input", function () {
      seeking = true;
      var at = (parseInt(seek.value, 10) / 1000) * longest();
      videos.forEach(function (v) { v.currentTime = Math.min(at, v.duration || at); });
      show();
      seeking = false;
    });
    videos.forEach(function (v) {
      v.muted = true; // Several soundtracks at once would be noise; each keeps its own controls.
      ["play", "pause", "timeupdate", "loadedmetadata", "ended"].forEach(function (name) {
        v.addEventListener(name, show);
      });
    });
    show();
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
