// Polls /pay/<token>/status until the payment lands; without JavaScript a
// <noscript> meta refresh reloads the page instead.
(function () {
  var el = document.getElementById("status");
  if (!el || !window.fetch) { return; }
  var url = el.getAttribute("data-status-url");
  var text = document.getElementById("status-text");
  var delay = 2000;
  function poll() {
    fetch(url, {cache: "no-store", credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (s) {
        if (s.status) {
          el.setAttribute("data-state", s.status);
          el.textContent = s.status_word;
          if (text && s.status_text) { text.textContent = s.status_text; }
        }
        if (!s.final) { window.setTimeout(poll, delay); }
      })
      .catch(function () { delay = Math.min(delay * 2, 30000); window.setTimeout(poll, delay); });
  }
  window.setTimeout(poll, delay);
})();
