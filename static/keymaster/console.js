// The Console's small behaviours: copy buttons, and polling a sent test notification's result.
(function () {
  "use strict";

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

  // Poll every second, for at most 30 s, until the notification is no longer queued.
  var result = document.querySelector("[data-poll]");
  if (!result) return;
  var started = Date.now();
  function status() {
    var article = result.querySelector("[data-status]");
    return article ? article.getAttribute("data-status") : "";
  }
  function stop(text) {
    var note = document.createElement("p");
    note.className = "warning";
    note.textContent = text;
    result.appendChild(note);
  }
  function poll() {
    if (status() !== "queued") return;
    if (Date.now() - started > 30000) {
      stop("Still queued after 30 seconds: is the delivery worker (qcluster) running? Reload the page to check again.");
      return;
    }
    fetch(result.getAttribute("data-poll"), { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        var fresh = document.createElement("template");
        fresh.innerHTML = html;
        if (!fresh.content.querySelector("[data-status]")) {
          // Not the fragment (the session ended and this is the sign-in page): stop here.
          stop("Could not check the result: reload the page (you may need to sign in again).");
          return;
        }
        result.replaceChildren(fresh.content);
        if (window.keymasterLocaliseTimes) window.keymasterLocaliseTimes(result);
        setTimeout(poll, 1000);
      })
      .catch(function () {
        setTimeout(poll, 1000); // a dropped poll is retried on the next tick
      });
  }
  setTimeout(poll, 1000);
})();
