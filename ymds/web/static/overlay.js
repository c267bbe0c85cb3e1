// Stream overlay (OBS browser source): listens to /overlay/<token>/events (Server-Sent
// Events). The alerts page shows each donation for data-seconds, one after another; the
// goal page moves its bar. Names and messages are set as text, never as HTML; a private
// donor's name and message are null in the events and shown as data-anonymous / nothing.
(function () {
  "use strict";
  var body = document.body;
  var url = body.getAttribute("data-events");
  if (!url || !window.EventSource) { return; }
  var lastId = "";
  var retryDelay = 2000;
  var handlers = {};

  // EventSource reconnects by itself (sending Last-Event-ID) after a dropped stream, but
  // gives up for good on an error status (503 or 429 when the server is full, 404 for a
  // rotated link); then we open a new one after a growing delay, passing the last id in
  // the URL since a new EventSource cannot send the header.
  function connect() {
    var source = new EventSource(lastId ? url + "?last=" + encodeURIComponent(lastId) : url);
    ["start", "donation", "goal", "skip"].forEach(function (kind) {
      source.addEventListener(kind, function (e) {
        if (e.lastEventId) { lastId = e.lastEventId; }
        if (handlers[kind]) { handlers[kind](e); }
      });
    });
    // data-live says whether the stream is connected (for a look in the browser's inspector)
    source.addEventListener("open", function () { body.setAttribute("data-live", "1"); retryDelay = 2000; });
    source.addEventListener("error", function () {
      body.setAttribute("data-live", "0");
      if (source.readyState === EventSource.CLOSED) {
        window.setTimeout(connect, retryDelay);
        retryDelay = Math.min(retryDelay * 2, 60000);
      }
    });
  }

  function parse(e) {
    try { return JSON.parse(e.data); } catch (err) { return null; }
  }

  // --- alerts: a queue shown one at a time --------------------------------------------
  var box = document.getElementById("alert");
  if (box) {
    var seconds = parseFloat(body.getAttribute("data-seconds")) || 8;
    var soundUrl = body.getAttribute("data-sound");
    var anonymous = body.getAttribute("data-anonymous") || "";
    var queue = [];
    var showing = null;  // id of the alert on screen
    var timer = null;
    var sound = soundUrl ? new Audio(soundUrl) : null;

    var next = function () {
      timer = null;
      showing = null;
      box.hidden = true;
      if (!queue.length) { return; }
      var item = queue.shift();
      showing = item.id;
      box.querySelector(".alert-name").textContent = item.data.name || anonymous;
      box.querySelector(".alert-amount").textContent = item.data.amount_text || item.data.amount;
      box.querySelector(".alert-message").textContent = item.data.message || "";
      box.setAttribute("data-id", item.id);
      // restart the entry animation
      box.style.animation = "none";
      void box.offsetWidth;
      box.style.animation = "";
      box.hidden = false;
      if (sound) {
        sound.currentTime = 0;
        var played = sound.play();
        if (played && played.catch) { played.catch(function () {}); }
      }
      timer = window.setTimeout(next, seconds * 1000);
    };

    handlers.donation = function (e) {
      var data = parse(e);
      if (!data) { return; }
      queue.push({id: e.lastEventId, data: data});
      if (showing === null && timer === null) { next(); }
    };

    handlers.skip = function (e) {
      var data = parse(e);
      if (!data) { return; }
      queue = queue.filter(function (item) { return item.id !== data.target; });
      if (showing === data.target) {
        window.clearTimeout(timer);
        next();
      }
    };
  }

  // --- goal: the bar follows every goal event ------------------------------------------
  var goal = document.getElementById("goal");
  if (goal) {
    var of = body.getAttribute("data-of") || "/";
    handlers.goal = function (e) {
      var data = parse(e);
      if (!data) { return; }
      goal.querySelector(".goal-title").textContent = data.title || "";
      var bar = goal.querySelector(".goal-bar");
      bar.value = data.percent;
      bar.textContent = data.percent + "%";
      goal.querySelector(".goal-raised").textContent = data.raised_text;
      goal.querySelector(".goal-of").textContent = of;
      goal.querySelector(".goal-target").textContent = data.goal_text;
      goal.querySelector(".goal-percent").textContent = "(" + data.percent + "%)";
      goal.setAttribute("data-raised", data.raised);
      goal.hidden = false;
    };
  }

  connect();
})();
