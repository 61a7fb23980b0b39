// Keymaster's service worker for your own site: copy it to your origin (a service worker must
// be same-origin) and let keymaster-push.js register it. Keymaster's own pages use it too
// (served as /sw.js). README "Web Push on your own site" documents the payload it receives:
//   {notification_id, title, body, data, open_token?}
// data.icon: the notification's icon; data.url (or data.route): where a click goes.
// open_token (apps that track opens): reported to Keymaster's POST /push/opened on a click.
"use strict";

// Keymaster's address: ?keymaster=<base URL> on this script's URL (keymaster-push.js adds
// it), else self.KEYMASTER_BASE_URL set before importScripts, else this site itself.
var KEYMASTER_BASE_URL = (function () {
  var given = new URL(self.location.href).searchParams.get("keymaster");
  return (given || self.KEYMASTER_BASE_URL || self.location.origin).replace(/\/+$/, "");
})();

self.addEventListener("install", function () {
  self.skipWaiting();
});

self.addEventListener("activate", function (event) {
  event.waitUntil(self.clients.claim());
});

function pushed(event) {
  if (!event.data) return {};
  try {
    return event.data.json() || {};
  } catch (error) {
    return { body: event.data.text() };
  }
}

self.addEventListener("push", function (event) {
  var msg = pushed(event);
  var data = msg.data && typeof msg.data === "object" ? msg.data : {};
  // The notification keeps the sender's data, with the ids a click needs.
  var kept = Object.assign({}, data, { notification_id: msg.notification_id || null });
  if (msg.open_token) kept.open_token = msg.open_token;
  var options = { body: msg.body || "", tag: msg.notification_id || undefined, data: kept };
  if (typeof data.icon === "string") options.icon = data.icon;
  event.waitUntil(self.registration.showNotification(msg.title || "Notification", options));
});

// Only http(s) pages: a pushed URL must never become a javascript: or data: URL.
function target(url) {
  try {
    var parsed = new URL(url || "/", self.location.origin);
    if (parsed.protocol === "https:" || parsed.protocol === "http:") return parsed.href;
  } catch (error) {
    // an unparsable URL opens the site instead
  }
  return new URL("/", self.location.origin).href;
}

function reportOpen(token) {
  if (!token) return Promise.resolve();
  return fetch(KEYMASTER_BASE_URL + "/push/opened", {
    method: "POST",
    credentials: "omit",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token: token }),
  }).catch(function () {
    // an open that cannot be reported must not stop the click
  });
}

function focusOrOpen(url) {
  return self.clients
    .matchAll({ type: "window", includeUncontrolled: true })
    .then(function (windows) {
      for (var i = 0; i < windows.length; i++) {
        if (windows[i].url === url && "focus" in windows[i]) return windows[i].focus();
      }
      return self.clients.openWindow(url);
    });
}

// Named, so a test can run it in the worker with the notification it showed.
self.keymasterNotificationClick = function (event) {
  event.notification.close();
  var data = event.notification.data || {};
  var url = target(typeof data.url === "string" ? data.url : data.route);
  event.waitUntil(Promise.all([reportOpen(data.open_token), focusOrOpen(url)]));
};
self.addEventListener("notificationclick", self.keymasterNotificationClick);

// The push service replaced the subscription: subscribe again with the same key and tell the
// open pages, whose keymaster-push.js registers it with Keymaster (it holds the user's token).
self.addEventListener("pushsubscriptionchange", function (event) {
  var old = event.oldSubscription;
  var key = old && old.options && old.options.applicationServerKey;
  event.waitUntil(
    (event.newSubscription
      ? Promise.resolve(event.newSubscription)
      : self.registration.pushManager.subscribe({
          userVisibleOnly: true,
          applicationServerKey: key,
        })
    ).then(function (subscription) {
      return self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(
        function (windows) {
          windows.forEach(function (client) {
            client.postMessage({
              type: "keymaster-push:subscriptionchange",
              subscription: subscription.toJSON(),
            });
          });
        }
      );
    })
  );
});
