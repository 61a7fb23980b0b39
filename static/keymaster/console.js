// The Console's small behaviours: copy buttons, a failed form brought into view, confirmations,
// Escape closing an open confirmation, the test send's preview and the quota warning.
(function () {
  "use strict";

  // A form that failed (the page came back from a POST with its errors): bring its error list
  // into view and put the cursor in the first bad field, so nobody hunts for what went wrong.
  // After the load: the browser's own jump to the URL's #fragment moves focus to the page.
  var failed = document.querySelector("[data-form-error]");
  if (failed) {
    window.addEventListener("load", function () {
      setTimeout(function () {
        var form = failed.closest("form");
        var firstBad = form && form.querySelector("[aria-invalid=true]");
        failed.scrollIntoView({ block: "start" });
        (firstBad || failed).focus({ preventScroll: true });
      }, 0);
    });
  }

  // Forms that undo something important ask first (turning push off).
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  // Escape closes an open confirmation and gives focus back to what opened it.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var open = document.activeElement && document.activeElement.closest("details[open]");
    open = open || document.querySelector("details.confirm[open]");
    if (!open) return;
    open.removeAttribute("open");
    var summary = open.querySelector("summary");
    if (summary) summary.focus();
  });

  // The test send's preview follows the title and body as they are typed.
  function follow(inputId, targetSelector) {
    var input = document.getElementById(inputId);
    var target = document.querySelector(targetSelector);
    if (!input || !target) return;
    input.addEventListener("input", function () { target.textContent = input.value; });
  }
  follow("test_title", "[data-preview-title]");
  follow("test_body", "[data-preview-body]");

  // Lowering the daily quota below what was already sent today warns before saving.
  var quotaBox = document.querySelector("[data-quota-used]");
  if (quotaBox) {
    var used = parseInt(quotaBox.getAttribute("data-quota-used"), 10) || 0;
    var quotaInput = quotaBox.querySelector("input");
    var warning = quotaBox.querySelector("[data-quota-warning]");
    var check = function () {
      var value = parseInt(quotaInput.value, 10);
      warning.hidden = !(value >= 0 && value < used);
    };
    quotaInput.addEventListener("input", check);
    check();
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-http hosts have no clipboard API: copy through a selected, off-screen textarea.
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.left = "-9999px";
    document.body.appendChild(area);
    area.select();
    var ok = document.execCommand("copy");
    document.body.removeChild(area);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) return;
    var label = button.textContent;
    copyText(source.textContent.trim()).then(
      function () { button.textContent = "Copied"; },
      function () { button.textContent = "Select and copy by hand"; }
    );
    setTimeout(function () { button.textContent = label; }, 2000);
  });

  // A notification's page while it is queued: check every second, for at most 30 s, and reload
  // once the deliveries have an outcome (the status URL answers with the notification's state).
  var live = document.querySelector("[data-poll]");
  if (!live) return;
  var started = Date.now();
  function stop(text) {
    var note = document.createElement("p");
    note.className = "warning";
    note.setAttribute("role", "status");
    note.textContent = text;
    live.appendChild(note);
  }
  function poll() {
    if (Date.now() - started > 30000) {
      stop("Still queued after 30 seconds: is the delivery worker (qcluster) running? Reload the page to check again.");
      return;
    }
    fetch(live.getAttribute("data-poll"), { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        var fresh = document.createElement("template");
        fresh.innerHTML = html;
        var article = fresh.content.querySelector("[data-status]");
        if (!article) {
          // Not the fragment (the session ended and this is the sign-in page): stop here.
          stop("Could not check the result: reload the page (you may need to sign in again).");
          return;
        }
        if (article.getAttribute("data-status") !== "queued") window.location.reload();
        else setTimeout(poll, 1000);
      })
      .catch(function () {
        setTimeout(poll, 1000); // a dropped poll is retried on the next tick
      });
  }
  setTimeout(poll, 1000);
})();
