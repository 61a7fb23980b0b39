// "Enable notifications in this browser": register /sw.js, subscribe with the site's VAPID key
// and hand the subscription to POST /push/subscribe (cookie-authenticated, CSRF-checked).
(function () {
  "use strict";
  var box = document.getElementById("browser-push");
  var button = document.getElementById("enable-push");
  var statusLine = document.getElementById("browser-push-status");
  var REGISTERED = "keymaster.browserRegistered";

  function say(text, isError) {
    if (!statusLine) return;
    statusLine.textContent = text;
    statusLine.className = isError ? "error" : "muted";
  }

  function keyBytes(base64url) {
    var text = base64url.replace(/-/g, "+").replace(/_/g, "/");
    var raw = atob(text + "===".slice((text.length + 3) % 4));
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes;
  }

  function sameKey(a, b) {
    if (!a || !b) return false;
    var x = new Uint8Array(a), y = new Uint8Array(b);
    if (x.length !== y.length) return false;
    for (var i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
    return true;
  }

  // The app this browser subscribes for: a hidden input when there is one, a <select> when many.
  function chosenApp() {
    var field = document.getElementById("push-app");
    return field.tagName === "SELECT" ? field.options[field.selectedIndex] : field;
  }

  // POST a PushSubscription (or anything shaped like its toJSON()) and return the answer.
  async function postSubscription(subscription) {
    var json = typeof subscription.toJSON === "function" ? subscription.toJSON() : subscription;
    var keys = json.keys || {};
    var response = await fetch(box.getAttribute("data-subscribe-url"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": box.getAttribute("data-csrf") },
      body: JSON.stringify({
        endpoint: json.endpoint,
        expirationTime: json.expirationTime == null ? null : json.expirationTime,
        keys: { p256dh: keys.p256dh, auth: keys.auth },
        app_id: chosenApp().value,
      }),
    });
    var body = await response.json().catch(function () { return {}; });
    if (!response.ok) {
      var message = body.error && body.error.message;
      throw new Error(message || "The server refused this browser (HTTP " + response.status + ").");
    }
    return body;
  }

  // A push service that cannot be reached (offline, firewalled) may never answer at all.
  function withinSeconds(promise, seconds) {
    return Promise.race([
      promise,
      new Promise(function (_, reject) {
        setTimeout(function () { reject(new Error("no answer in " + seconds + " s")); }, seconds * 1000);
      }),
    ]);
  }

  async function subscription(registration, key) {
    var current = await registration.pushManager.getSubscription();
    if (current && sameKey(current.options.applicationServerKey, key.buffer)) return current;
    // Subscribed with another key (it was rotated): that subscription can never be used.
    if (current) await current.unsubscribe();
    return registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  }

  function subscribeProblem(error) {
    if (error.name === "NotAllowedError") {
      return "This browser does not allow push subscriptions here (it said: " + error.message +
        "). Private windows and some browser settings turn push off; try a normal window.";
    }
    return "This browser's push service is unavailable right now, so it cannot be registered (" +
      error.message + "). Try again later.";
  }

  async function enable() {
    button.disabled = true;
    try {
      say("Asking for permission…");
      var permission = await Notification.requestPermission();
      if (permission !== "granted") {
        say("Notifications are blocked for this site. Allow them in the browser's site settings, then try again.", true);
        return;
      }
      var registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
      await withinSeconds(navigator.serviceWorker.ready, 20);
      var sub;
      try {
        sub = await withinSeconds(subscription(registration, keyBytes(chosenApp().getAttribute("data-vapid-key"))), 20);
      } catch (error) {
        say(subscribeProblem(error), true);
        return;
      }
      await postSubscription(sub);
      sessionStorage.setItem(REGISTERED, "1");
      window.location.reload();
    } catch (error) {
      say("Could not turn notifications on: " + error.message, true);
    } finally {
      button.disabled = false;
    }
  }

  function supported() {
    return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
  }

  // Mark the device row that is this browser: the page lists each Web Push device with the
  // SHA-256 of its endpoint, compared here with this browser's own subscription.
  async function markThisBrowser() {
    if (!("serviceWorker" in navigator) || !window.crypto || !crypto.subtle) return;
    var registration = await navigator.serviceWorker.getRegistration("/");
    var current = registration && await registration.pushManager.getSubscription();
    if (!current) return;
    var digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(current.endpoint));
    var hex = Array.from(new Uint8Array(digest)).map(function (b) {
      return b.toString(16).padStart(2, "0");
    }).join("");
    document.querySelectorAll("[data-endpoint-digest]").forEach(function (cell) {
      if (cell.getAttribute("data-endpoint-digest") !== hex) return;
      var badge = cell.querySelector(".this-browser");
      if (badge) badge.hidden = false;
      cell.closest("tr").classList.add("is-this-browser");
    });
  }
  markThisBrowser().catch(function () { /* no subscription to compare: nothing to mark */ });

  if (!box || !button) return;
  window.keymasterPostSubscription = postSubscription;
  if (!supported()) {
    button.disabled = true;
    say("This browser does not support push notifications, so it cannot receive them.", true);
    return;
  }
  button.addEventListener("click", enable);
  if (sessionStorage.getItem(REGISTERED)) {
    sessionStorage.removeItem(REGISTERED);
    say("Notifications are on in this browser: it is listed below.");
  } else if (Notification.permission === "denied") {
    say("Notifications are blocked for this site. Allow them in the browser's site settings to turn them on.", true);
  }
})();
