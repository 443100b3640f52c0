// The gallery's library tools: selecting cards for the bulk bar, the in-page viewer
// with previous/next (loading older pages as it goes), and hover previews. Event
// delegation on the document, so cards swapped in by htmx (filters, live updates,
// Back) need no setting up.
(function () {
  "use strict";

  // --- Selection ------------------------------------------------------------
  var lastChecked = null;

  function boxes() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-select]"));
  }

  function updateBar() {
    var count = boxes().filter(function (box) { return box.checked; }).length;
    var label = document.querySelector("[data-bulk-count]");
    var actions = document.querySelector("[data-bulk-actions]");
    var all = document.querySelector("[data-select-all]");
    if (label) {
      label.textContent = count + " selected";
    }
    if (actions) {
      actions.hidden = count === 0;
    }
    if (all) {
      all.checked = count > 0 && count === boxes().length;
      all.indeterminate = count > 0 && count < boxes().length;
    }
  }

  document.addEventListener("click", function (event) {
    var box = event.target.closest && event.target.closest("[data-select]");
    if (!box) {
      return;
    }
    // Shift-click: everything between the last box clicked and this one takes this one's state.
    var list = boxes();
    if (event.shiftKey && lastChecked && list.indexOf(lastChecked) !== -1) {
      var from = list.indexOf(lastChecked);
      var to = list.indexOf(box);
      list.slice(Math.min(from, to), Math.max(from, to) + 1).forEach(function (other) {
        other.checked = box.checked;
      });
    }
    lastChecked = box;
  });

  document.addEventListener("change", function (event) {
    if (event.target.matches("[data-select-all]")) {
      boxes().forEach(function (box) { box.checked = event.target.checked; });
    }
    if (event.target.matches("[data-select], [data-select-all]")) {
      updateBar();
    }
  });

  // A live update replaces a whole card: keep its box ticked if it was.
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var old = event.detail.target.querySelector && event.detail.target.querySelector("[data-select]");
    var fresh = event.detail.fragment.querySelector && event.detail.fragment.querySelector("[data-select]");
    if (old && fresh) {
      fresh.toggleAttribute("checked", old.checked);
      fresh.checked = old.checked;
    }
  });

  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    if (button && button.hasAttribute("data-confirm") && !window.confirm(button.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  // --- Viewer ---------------------------------------------------------------
  var viewer = null;
  var current = null;

  function cards() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-viewer-list] [data-card]"));
  }

  function show(card) {
    var media = viewer.querySelector("[data-viewer-media]");
    media.textContent = "";
    var src = card.getAttribute("data-video");
    if (src) {
      var video = document.createElement("video");
      video.controls = true;
      video.autoplay = true;
      video.playsInline = true;
      video.preload = "metadata";
      if (card.getAttribute("data-poster")) {
        video.poster = card.getAttribute("data-poster");
      }
      video.src = src;
      media.appendChild(video);
    } else {
      var note = document.createElement("p");
      note.className = "placeholder placeholder--large";
      note.textContent = card.querySelector(".badge") ? card.querySelector(".badge").textContent : "";
      media.appendChild(note);
    }
    viewer.querySelector("[data-viewer-title]").textContent = card.getAttribute("data-title");
    viewer.querySelector("[data-viewer-meta]").textContent = card.getAttribute("data-meta");
    viewer.querySelector("[data-viewer-page]").href = card.getAttribute("data-page");
    var list = cards();
    viewer.querySelector('[data-viewer-step="-1"]').disabled = list.indexOf(card) <= 0;
    // The last card loaded still has a next one while the gallery has older pages.
    viewer.querySelector('[data-viewer-step="1"]').disabled = list.indexOf(card) >= list.length - 1 && !olderLink();
    announce("");
    current = card;
  }

  // A live update swaps a card for a fresh copy with the same id: follow it there.
  function shown() {
    if (current && !current.isConnected && current.id) {
      current = document.getElementById(current.id) || current;
    }
    return current;
  }

  function step(by) {
    var list = cards();
    var at = list.indexOf(shown());
    var next = list[at + by];
    if (next) {
      show(next);
      // Closing returns to the card shown last, so keep it in view behind the dialog.
      next.scrollIntoView({ block: "nearest" });
    } else if (by > 0 && at === list.length - 1) {
      if (!olderLink()) {
        announce("This is the last video.");
        return;
      }
      loadOlder().then(function (loaded) {
        // A page of only variant groups has no card to step to: step again, loading on.
        if (loaded && viewer.open && shown() && shown().id === list[at].id) {
          step(by);
        }
      });
    }
  }

  function announce(text) {
    var status = viewer && viewer.querySelector("[data-viewer-status]");
    if (status) {
      status.textContent = text;
    }
  }

  // --- Beyond the loaded cards ------------------------------------------------
  // Stepping past the last card fetches the gallery's next page (its "Older" link, so
  // the filters come along) and appends its cards: the page, its scroll and its URL stay.
  var loading = null;

  function olderLink() {
    return document.querySelector('.pager a[rel="next"]');
  }

  function loadOlder() {
    var link = olderLink();
    if (loading || !link) {
      return loading || Promise.resolve(false);
    }
    announce("Loading more videos…");
    loading = window.fetch(link.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        // A redirect (the session ended) is not the next page.
        if (!response.ok || new URL(response.url).pathname !== new URL(link.href).pathname) {
          throw new Error("not the gallery");
        }
        return response.text();
      })
      .then(function (text) {
        appendPage(new DOMParser().parseFromString(text, "text/html"));
        return true;
      })
      .catch(function () {
        announce("More videos could not be loaded. Close the viewer and use the Older link.");
        return false;
      })
      .finally(function () {
        loading = null;
      });
    return loading;
  }

  function appendPage(fetched) {
    var grid = document.getElementById("cards");
    var more = fetched.getElementById("cards");
    Array.prototype.slice.call(more ? more.children : []).forEach(function (card) {
      if (grid && !(card.id && document.getElementById(card.id))) {
        grid.appendChild(card);
        if (window.htmx) {
          window.htmx.process(card);  // Its star's hx-post.
        }
      }
    });
    // The pager now leads on from the last card loaded; at the real end it has no "Older".
    var link = olderLink();
    var next = fetched.querySelector('.pager a[rel="next"]');
    if (next) {
      link.setAttribute("href", next.getAttribute("href"));
    } else {
      var pager = link.closest(".pager");
      link.remove();
      if (pager && !pager.querySelector("a")) {
        pager.remove();
      }
    }
    mergePoller(fetched);
    updateBar();
  }

  // The loaded cards still in progress join the one live poll. Without a version the
  // next poll answers in full, and its answer sets the poller for the whole set.
  function mergePoller(fetched) {
    var fresh = fetched.getElementById("live-cards");
    var old = document.getElementById("live-cards");
    if (!fresh || !old || !fresh.getAttribute("hx-get") || !window.htmx) {
      return;
    }
    var url = new URL(fresh.getAttribute("hx-get"), window.location.href);
    var ids = url.searchParams.get("ids").split(",");
    if (old.getAttribute("hx-get")) {
      ids = new URL(old.getAttribute("hx-get"), window.location.href).searchParams.get("ids").split(",").concat(ids);
    }
    url.searchParams.set("ids", ids.join(","));
    url.searchParams.delete("v");
    fresh.setAttribute("hx-get", url.pathname + url.search);
    old.replaceWith(fresh);
    window.htmx.process(fresh);
  }

  function stopVideo() {
    var video = viewer && viewer.querySelector("video");
    if (video) {
      video.pause();
      video.removeAttribute("src");
      video.load();
    }
  }

  document.addEventListener("click", function (event) {
    var opener = event.target.closest && event.target.closest("[data-viewer-open]");
    viewer = document.getElementById("viewer");
    // A modifier key or a middle click means "open the page" (a new tab): leave it to the browser.
    if (!opener || !viewer || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) {
      return;
    }
    var card = opener.closest("[data-card]");
    if (!card) {
      return;
    }
    event.preventDefault();
    show(card);
    viewer.showModal();
  });

  document.addEventListener("click", function (event) {
    if (!viewer || !event.target.closest) {
      return;
    }
    var stepper = event.target.closest("[data-viewer-step]");
    if (stepper) {
      step(parseInt(stepper.getAttribute("data-viewer-step"), 10));
    } else if (event.target.closest("[data-viewer-close]")) {
      viewer.close();
    }
  });

  document.addEventListener("keydown", function (event) {
    if (!viewer || !viewer.open || event.target.closest("input, select, textarea")) {
      return;
    }
    if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
      event.preventDefault();
      step(event.key === "ArrowLeft" ? -1 : 1);
    }
  });

  // Escape (the dialog's own cancel) and the close button both end here.
  document.addEventListener("close", function (event) {
    if (event.target !== viewer) {
      return;
    }
    stopVideo();
    var link = shown() && shown().querySelector("[data-viewer-open]");
    if (link) {
      link.focus({ preventScroll: true });
    }
  }, true);

  // --- Hover and focus previews -----------------------------------------------
  // The <video> is made only after the pointer rests: one that passes over downloads nothing.
  var PREVIEW_DELAY_MS = 300;
  var timers = new WeakMap();

  function startPreview(card) {
    if (!card.getAttribute("data-video") || timers.has(card)) {
      return;
    }
    timers.set(card, window.setTimeout(function () {
      var box = card.querySelector(".card__media");
      if (!box || box.querySelector("video")) {
        return;
      }
      var video = document.createElement("video");
      video.className = "card__preview";
      video.muted = true;
      video.loop = true;
      video.playsInline = true;
      video.preload = "none";
      video.setAttribute("aria-hidden", "true");
      video.src = card.getAttribute("data-video");
      box.appendChild(video);
      var playing = video.play();
      if (playing && playing.catch) {
        playing.catch(function () {});
      }
    }, PREVIEW_DELAY_MS));
  }

  function stopPreview(card) {
    window.clearTimeout(timers.get(card));
    timers.delete(card);
    var video = card.querySelector(".card__preview");
    if (video) {
      video.pause();
      video.removeAttribute("src");
      video.load();  // Drops the connection: an unloaded preview stops downloading.
      video.remove();
    }
  }

  function cardOf(event) {
    return event.target.closest ? event.target.closest("[data-card]") : null;
  }

  document.addEventListener("mouseover", function (event) {
    var card = cardOf(event);
    if (card && !card.contains(event.relatedTarget)) {
      startPreview(card);
    }
  });
  document.addEventListener("mouseout", function (event) {
    var card = cardOf(event);
    if (card && !card.contains(event.relatedTarget)) {
      stopPreview(card);
    }
  });
  document.addEventListener("focusin", function (event) {
    var card = cardOf(event);
    if (card) {
      startPreview(card);
    }
  });
  document.addEventListener("focusout", function (event) {
    var card = cardOf(event);
    if (card && !card.contains(event.relatedTarget)) {
      stopPreview(card);
    }
  });

  // --- Filters and history --------------------------------------------------
  // Filters left at "any" stay out of the URL, so a shared or bookmarked link reads plainly.
  document.addEventListener("htmx:configRequest", function (event) {
    if (event.detail.elt.id !== "gallery-filters") {
      return;
    }
    var params = event.detail.parameters;
    Array.from(params.keys()).forEach(function (key) {
      if (params.getAll(key).every(function (value) { return value === ""; })) {
        params.delete(key);
      }
    });
  });

  // Back/forward restore the whole page from the server (the history cache is off), so
  // the restored form already shows that URL's filters; only the bar needs counting again.
  document.addEventListener("htmx:historyRestore", function () {
    lastChecked = null;
    current = null;
    loading = null;
    updateBar();
  });
  document.addEventListener("htmx:afterSwap", updateBar);
})();
