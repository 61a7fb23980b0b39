// keymaster-push.js: Web Push for your own site through Keymaster. An ES module, no build step.
//
//   import { subscribe, unsubscribe, status } from "https://<keymaster>/static/keymaster/keymaster-push.js";
//   const deviceId = await subscribe({
//     baseUrl: "https://<keymaster>", appId: "<app_id>", vapidPublicKey: "<from GET /push/config>",
//     getAccessToken: async () => "<the signed-in user's Keymaster access token>",
//   });
//
// Your page's origin must be in the app's allowed_origins, and keymaster-sw.js must be served
// from your own origin (default "/keymaster-sw.js"). Errors are KeymasterPushError with a
// `code` to switch on (see CODES) and a message that says what to do.
// README "Web Push on your own site" has the whole guide and the payload format.

const STORE = "keymaster-push:";
const CHANGE = "keymaster-push:subscriptionchange";

export const CODES = Object.freeze({
  UNSUPPORTED: "unsupported",
  IOS_HOME_SCREEN: "ios_home_screen",
  PERMISSION_DENIED: "permission_denied",
  PUSH_SERVICE_UNREACHABLE: "push_service_unreachable",
  PUSH_DISABLED: "push_disabled",
  ORIGIN_NOT_ALLOWED: "origin_not_allowed",
  KEYMASTER_UNREACHABLE: "keymaster_unreachable",
  REJECTED: "rejected",
});

export class KeymasterPushError extends Error {
  constructor(code, message, detail) {
    super(message);
    this.name = "KeymasterPushError";
    this.code = code;
    this.detail = detail || null;
  }
}

let remembered = null; // the options of the last subscribe(), for unsubscribe() and changes

function supported() {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

function onIosOutsideHomeScreen() {
  const ios = /iPhone|iPad|iPod/.test(navigator.userAgent);
  const standalone =
    navigator.standalone === true || window.matchMedia("(display-mode: standalone)").matches;
  return ios && !standalone;
}

function unsupportedError() {
  if (onIosOutsideHomeScreen()) {
    return new KeymasterPushError(
      CODES.IOS_HOME_SCREEN,
      "Safari on iPhone and iPad shows notifications only for sites added to the home " +
        "screen: tap Share, then Add to Home Screen, and open the site from there."
    );
  }
  return new KeymasterPushError(
    CODES.UNSUPPORTED,
    "This browser cannot receive push notifications."
  );
}

function keyBytes(base64url) {
  const padded = (base64url + "===".slice((base64url.length + 3) % 4))
    .replace(/-/g, "+")
    .replace(/_/g, "/");
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

function sameKey(subscription, key) {
  const current = subscription.options && subscription.options.applicationServerKey;
  if (!current) return true;
  const a = new Uint8Array(current);
  return a.length === key.length && a.every((byte, i) => byte === key[i]);
}

function activated(registration) {
  const worker = registration.installing || registration.waiting;
  if (registration.active || !worker) return Promise.resolve(registration);
  return new Promise((resolve) => {
    worker.addEventListener("statechange", () => {
      if (worker.state === "activated") resolve(registration);
    });
  });
}

async function call(options, method, path, body) {
  const token = await options.getAccessToken();
  let response;
  try {
    response = await fetch(options.baseUrl.replace(/\/+$/, "") + path, {
      method,
      credentials: "omit",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    // The browser hides why: Keymaster is down, or it sent no CORS headers for this origin.
    throw new KeymasterPushError(
      CODES.KEYMASTER_UNREACHABLE,
      `Keymaster at ${options.baseUrl} could not be reached, or no app allows this page's ` +
        `origin (${location.origin}): add it to the app's allowed origins.`,
      String(error)
    );
  }
  if (response.ok) return response.status === 204 ? null : response.json();
  let error = {};
  try {
    error = (await response.json()).error || {};
  } catch (ignored) {
    // not the JSON error format: keep the status
  }
  const code =
    error.code === "origin_not_allowed"
      ? CODES.ORIGIN_NOT_ALLOWED
      : error.code === "push_disabled"
        ? CODES.PUSH_DISABLED
        : CODES.REJECTED;
  const advice = {
    [CODES.ORIGIN_NOT_ALLOWED]: ` Add ${location.origin} to the app's allowed origins.`,
    [CODES.PUSH_DISABLED]: " Turn push on for the app in the Keymaster Console.",
  };
  throw new KeymasterPushError(
    code,
    (error.message || `Keymaster answered HTTP ${response.status}.`) + (advice[code] || ""),
    { status: response.status, error }
  );
}

async function register(options, subscription) {
  const answer = await call(options, "POST", "/push/devices/register", {
    app_id: options.appId,
    platform: "web",
    push_token: subscription.toJSON ? subscription.toJSON() : subscription,
  });
  localStorage.setItem(STORE + options.appId, answer.device_id);
  return answer.device_id;
}

function listenForChanges(options) {
  if (remembered) {
    remembered = options;
    return;
  }
  remembered = options;
  navigator.serviceWorker.addEventListener("message", (event) => {
    if (event.data && event.data.type === CHANGE && remembered) {
      register(remembered, event.data.subscription).catch(() => {});
    }
  });
}

/**
 * Ask permission, subscribe with the app's VAPID key, register the subscription with
 * Keymaster (platform "web") and return its device_id. Safe to call on every page load:
 * a browser already subscribed is registered again and keeps its device_id.
 */
export async function subscribe(options) {
  const { baseUrl, appId, vapidPublicKey, getAccessToken } = options || {};
  if (!baseUrl || !appId || !vapidPublicKey || typeof getAccessToken !== "function") {
    throw new TypeError("subscribe({baseUrl, appId, vapidPublicKey, getAccessToken}) needs all four.");
  }
  if (!supported()) throw unsupportedError();
  const permission = await Notification.requestPermission();
  if (permission !== "granted") {
    throw new KeymasterPushError(
      CODES.PERMISSION_DENIED,
      permission === "denied"
        ? "Notifications are blocked for this site: allow them in the browser's site settings."
        : "Notifications were not allowed: ask again when the user is ready."
    );
  }
  const script = options.serviceWorker || "/keymaster-sw.js";
  const url = `${script}${script.includes("?") ? "&" : "?"}keymaster=${encodeURIComponent(baseUrl)}`;
  const registration = await activated(await navigator.serviceWorker.register(url));
  const key = keyBytes(vapidPublicKey);
  let subscription = await registration.pushManager.getSubscription();
  if (subscription && !sameKey(subscription, key)) {
    await subscription.unsubscribe(); // made with another app's key: replace it
    subscription = null;
  }
  if (!subscription) {
    try {
      subscription = await registration.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: key,
      });
    } catch (error) {
      if (error && error.name === "NotAllowedError") {
        throw new KeymasterPushError(
          CODES.PERMISSION_DENIED,
          "Notifications are blocked for this site: allow them in the browser's site settings."
        );
      }
      throw new KeymasterPushError(
        CODES.PUSH_SERVICE_UNREACHABLE,
        "The browser's push service could not be reached: check the connection and try again.",
        String(error)
      );
    }
  }
  const options_ = { baseUrl, appId, vapidPublicKey, getAccessToken, serviceWorker: script };
  listenForChanges(options_);
  return register(options_, subscription);
}

/** Remove this browser's device from Keymaster and end its push subscription. */
export async function unsubscribe(options) {
  const given = options || remembered;
  if (!given) throw new TypeError("unsubscribe() needs the options given to subscribe().");
  const deviceId = localStorage.getItem(STORE + given.appId);
  if (deviceId) {
    await call(given, "DELETE", `/push/devices/${deviceId}`);
    localStorage.removeItem(STORE + given.appId);
  }
  if (supported()) {
    const registration = await navigator.serviceWorker.getRegistration();
    const subscription = registration && (await registration.pushManager.getSubscription());
    if (subscription) await subscription.unsubscribe();
  }
}

/** "unsupported", "denied", "default" (not asked yet) or "subscribed". */
export async function status() {
  if (!supported()) return "unsupported";
  if (Notification.permission !== "granted") return Notification.permission;
  const registration = await navigator.serviceWorker.getRegistration();
  const subscription = registration && (await registration.pushManager.getSubscription());
  return subscription ? "subscribed" : "default";
}
