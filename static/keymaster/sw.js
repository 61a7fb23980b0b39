// Keymaster's service worker: shows pushed notifications and opens their route on click.
// Payload (JSON): {title, body, data, notification_id}; data.route is where a click goes.
"use strict";

self.addEventListener("install", function () {
  self.skipWaiting();
});

self.addEventListener("activate", function (event) {
  event.waitUntil(self.clients.claim());
});

function message(event) {
  if (!event.data) return {};
  try {
    return event.data.json() || {};
  } catch (error) {
    return { body: event.data.text() };
  }
}

self.addEventListener("push", function (event) {
  var msg = message(event);
  var data = Object.assign({}, msg.data || {}, { notification_id: msg.notification_id || null });
  event.waitUntil(
    self.registration.showNotification(msg.title || "Notification", {
      body: msg.body || "",
      data: data,
      tag: msg.notification_id || undefined,
    })
  );
});

// Only http(s) pages: a pushed route must never become a javascript: or data: URL.
function target(route) {
  try {
    var url = new URL(route || "/", self.location.origin);
    if (url.protocol === "https:" || url.protocol === "http:") return url.href;
  } catch (error) {
    // an unparsable route opens the site instead
  }
  return new URL("/", self.location.origin).href;
}

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var url = target(event.notification.data && event.notification.data.route);
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (windows) {
      for (var i = 0; i < windows.length; i++) {
        if (windows[i].url === url && "focus" in windows[i]) return windows[i].focus();
      }
      return self.clients.openWindow(url);
    })
  );
});
