// The Scheduled tab: a running broadcast's counts follow it, polled from the Console's own
// JSON endpoint every few seconds until it is done or canceled (then the page is reloaded once,
// so its Cancel button goes away).
(function () {
  "use strict";
  var EVERY_MS = 3000;
  var ENDED = { done: true, canceled: true };

  function label(status) {
    var text = status.replace(/_/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function poll(row) {
    var url = row.getAttribute("data-counts-url");
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (answer) {
        if (!answer) return;
        Object.keys(answer.counts).forEach(function (name) {
          var cell = row.querySelector('[data-count="' + name + '"]');
          if (cell) cell.textContent = answer.counts[name].toLocaleString("en");
        });
        var badge = row.querySelector("[data-status]");
        badge.textContent = label(answer.status);
        badge.className = "badge status-" + answer.status;
        if (ENDED[answer.status]) {
          window.location.reload();
        } else {
          setTimeout(function () { poll(row); }, EVERY_MS);
        }
      })
      .catch(function () { setTimeout(function () { poll(row); }, EVERY_MS * 2); });
  }

  document.querySelectorAll("[data-counts-url]").forEach(function (row) {
    setTimeout(function () { poll(row); }, EVERY_MS);
  });
})();
