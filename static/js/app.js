// soraweb's only script: polling manners, the image preview, the prompt counter.
// No inline handlers and no eval, so it runs under a strict Content-Security-Policy.
(function () {
  "use strict";

  // --- Live updates -------------------------------------------------------
  // Polled elements carry data-poll and hx-trigger="every 3s, poll-now". While the
  // tab is hidden most polls are cancelled, so a hidden tab asks every 15 s at most.
  var HIDDEN_POLL_MS = 15000;
  var lastPoll = 0;

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (!elt || !elt.hasAttribute("data-poll")) {
      return;
    }
    var now = Date.now();
    if (document.hidden && now - lastPoll < HIDDEN_POLL_MS) {
      event.preventDefault();
      return;
    }
    lastPoll = now;
  });

  // Coming back to the tab: catch up at once instead of waiting for the next tick.
  document.addEventListener("visibilitychange", function () {
    if (document.hidden || !window.htmx) {
      return;
    }
    document.querySelectorAll("[data-poll][hx-get]").forEach(function (elt) {
      window.htmx.trigger(elt, "poll-now");
    });
  });

  // A poll that was redirected (the session ended) would swap the sign-in page into
  // the card: load the whole page instead, which leads to sign-in properly.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    if (!xhr || !xhr.responseURL || !event.detail.requestConfig) {
      return;
    }
    var asked = new URL(event.detail.requestConfig.path, window.location.href).pathname;
    if (new URL(xhr.responseURL).pathname !== asked) {
      event.detail.shouldSwap = false;
      window.location.reload();
    }
  });

  // --- Elapsed times -------------------------------------------------------
  // An in-progress card counts up here from the seconds the server rendered, so the
  // poll needs no answer (a 204) until a job really moves.
  var shownAt = new WeakMap();

  function secondsText(seconds) {
    // As jobs_extras.seconds_text: "4 s", "2 min 10 s", "2 h 1 min".
    var hours = Math.floor(seconds / 3600);
    var minutes = Math.floor((seconds % 3600) / 60);
    if (hours) {
      return hours + " h " + minutes + " min";
    }
    return minutes ? minutes + " min " + (seconds % 60) + " s" : seconds + " s";
  }

  window.setInterval(function () {
    var now = Date.now();
    document.querySelectorAll("[data-elapsed]").forEach(function (elt) {
      if (!shownAt.has(elt)) {
        shownAt.set(elt, now);
      }
      var since = Math.round((now - shownAt.get(elt)) / 1000);
      elt.textContent = secondsText(parseInt(elt.getAttribute("data-elapsed"), 10) + since);
    });
  }, 1000);

  // --- The create form ----------------------------------------------------
  function setUpPreview(input) {
    // The server's sizes per orientation (VideoJob.SIZES), so the preview crops as it will.
    var SIZES = JSON.parse(input.getAttribute("data-sizes") || "{}");
    var figure = document.querySelector('[data-preview-for="' + input.id + '"]');
    if (!figure || !input.form) {
      return;
    }
    var frame = figure.querySelector(".preview__frame");
    var img = figure.querySelector("img");
    var caption = figure.querySelector("figcaption");
    var maxBytes = parseInt(input.getAttribute("data-max-bytes") || "0", 10);
    var objectUrl = null;

    function ratio() {
      var checked = input.form.querySelector('input[name="aspect_ratio"]:checked');
      return checked ? checked.value : "16:9";
    }

    function describe() {
      var target = SIZES[ratio()];
      if (!target) {
        return;
      }
      frame.classList.toggle("preview__frame--portrait", ratio() === "9:16");
      if (!img.naturalWidth) {
        return;
      }
      var size = img.naturalWidth + "×" + img.naturalHeight;
      var goal = target[0] + "×" + target[1];
      caption.textContent =
        size === goal
          ? size + ": already the exact size."
          : size + ": will be center-cropped and resized to " + goal + " (the area shown).";
    }

    input.addEventListener("change", function () {
      if (objectUrl) {
        URL.revokeObjectURL(objectUrl);
        objectUrl = null;
      }
      var file = input.files && input.files[0];
      img.removeAttribute("src");
      caption.textContent = "";
      if (!file) {
        figure.hidden = true;
        return;
      }
      figure.hidden = false;
      if (maxBytes && file.size > maxBytes) {
        frame.hidden = true;
        caption.textContent =
          "This file is " + (file.size / 1048576).toFixed(1) + " MB; the limit is " +
          Math.round(maxBytes / 1048576) + " MB. Choose a smaller image.";
        return;
      }
      frame.hidden = false;
      objectUrl = URL.createObjectURL(file);
      img.src = objectUrl;
    });
    img.addEventListener("load", describe);
    img.addEventListener("error", function () {
      if (img.getAttribute("src")) {
        frame.hidden = true;
        caption.textContent = "This file does not look like an image this browser can show.";
      }
    });
    input.form.querySelectorAll('input[name="aspect_ratio"]').forEach(function (radio) {
      radio.addEventListener("change", describe);
    });
    describe();
  }

  function setUpCounter(counter) {
    var field = document.getElementById(counter.getAttribute("data-counter-for"));
    if (!field) {
      return;
    }
    var limit = field.getAttribute("maxlength");
    function update() {
      counter.textContent = field.value.length + (limit ? " / " + limit : "") + " characters";
    }
    field.addEventListener("input", update);
    update();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll('input[type="file"][data-max-bytes]').forEach(setUpPreview);
    document.querySelectorAll("[data-counter-for]").forEach(setUpCounter);
  });
})();
