// SmallStack live dashboard: swaps cards in place as the server pushes them. No build step.
//
// Protocol (see smallstack/consumers.py): on open, subscribe to this page's scope; once
// subscribed, ask for a snapshot (the first time only of the cards still loading, after a
// reconnect of every card); then apply each "widget.update" by its key.
//
// For the layout editor (layout.js), on the grid element: a pushed card updates the card element
// in place and then fires "smallstack:card-updated" (detail: key, card); "smallstack:resubscribe"
// (detail: keys) subscribes again (the server reads the user's layout anew) and asks for those
// keys' cards; the server's "layout.changed" is passed on as "smallstack:layout-changed".
(function () {
  "use strict";

  const grid = document.querySelector("[data-live-socket]");
  const indicator = document.getElementById("live-indicator");
  if (!grid || !indicator || !("WebSocket" in window)) return;

  const readJSON = (id, fallback) => {
    const node = document.getElementById(id);
    try { return node ? JSON.parse(node.textContent) : fallback; } catch (e) { return fallback; }
  };
  const scope = readJSON("live-scope", {});
  const pending = readJSON("live-pending", []);
  const LABELS = {
    connecting: "Connecting…",
    live: "Live",
    reconnecting: "Reconnecting…",
    unavailable: "Live updates unavailable",
    "signed-out": "Signed out · reload to sign in",
    forbidden: "Live updates not allowed",
  };
  const BASE_DELAY = 500, MAX_DELAY = 30000;

  let socket = null;
  let attempt = 0;
  let everConnected = false;
  let retryTimer = null;
  let opening = false;  // the socket's first "subscribed" is still to come
  let wanted = null;  // keys to ask for with the next "subscribed"

  function setState(state) {
    indicator.hidden = false;
    indicator.dataset.state = state;
    indicator.textContent = LABELS[state] || state;
  }

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  // Attributes of a card element that belong to the page, not to the pushed card.
  const PAGE_ATTRIBUTES = new Set(["tabindex", "aria-describedby"]);

  function swap(key, html) {
    const old = grid.querySelector('[data-key="' + CSS.escape(key) + '"]');
    if (!old) return;
    const template = document.createElement("template");
    template.innerHTML = html.trim();  // server-rendered, autoescaped card
    const card = template.content.firstElementChild;
    if (!card) return;
    let updated = card;
    if (card.tagName === old.tagName) {
      // The element stays (keyboard focus and a drag in progress survive it): it takes the
      // pushed card's attributes and content, keeping the children the page marked to keep.
      const kept = Array.from(old.children).filter((child) => child.hasAttribute("data-card-keep"));
      for (const name of old.getAttributeNames()) {
        if (!card.hasAttribute(name) && !PAGE_ATTRIBUTES.has(name)) old.removeAttribute(name);
      }
      for (const name of card.getAttributeNames()) old.setAttribute(name, card.getAttribute(name));
      old.replaceChildren(...kept, ...card.childNodes);
      updated = old;
    } else {
      old.replaceWith(card);
    }
    grid.dispatchEvent(new CustomEvent("smallstack:card-updated", { detail: { key, card: updated } }));
  }

  function onMessage(event) {
    let message;
    try { message = JSON.parse(event.data); } catch (e) { return; }
    switch (message.type) {
      case "widget.update":
        swap(message.widget.key, message.html);
        break;
      case "subscribed": {
        const keys = wanted || [];
        wanted = null;
        if (!opening) {  // a resubscribe: just the cards asked for
          if (keys.length) send({ type: "snapshot", keys: keys });
        } else if (!everConnected) {
          const first = pending.concat(keys);
          if (first.length) send({ type: "snapshot", keys: first });
        } else {
          send({ type: "snapshot" });  // catch up on anything missed while away
        }
        opening = false;
        everConnected = true;
        break;
      }
      case "status":
        if (message.push === "live") {
          if (indicator.dataset.state === "unavailable") send({ type: "snapshot" });
          setState("live");
        } else {
          setState("unavailable");
        }
        break;
      case "layout.changed":  // its user saved this page's layout (maybe in another window)
        grid.dispatchEvent(new CustomEvent("smallstack:layout-changed", { detail: { keys: message.keys } }));
        break;
      case "error":
        console.warn("SmallStack live:", message.error);
        break;
    }
  }

  function scheduleReconnect() {
    // Exponential backoff with jitter: half the step fixed, half random.
    const step = Math.min(MAX_DELAY, BASE_DELAY * Math.pow(2, attempt));
    attempt += 1;
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, step / 2 + Math.random() * (step / 2));
  }

  function connect() {
    const protocol = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(protocol + location.host + grid.dataset.liveSocket);
    socket.addEventListener("open", () => {
      attempt = 0;
      opening = true;
      send(Object.assign({ type: "subscribe" }, scope));
    });
    socket.addEventListener("message", onMessage);
    socket.addEventListener("close", (event) => {
      socket = null;
      if (event.code === 4401) return setState("signed-out");
      if (event.code === 4403) return setState("forbidden");
      setState("reconnecting");
      scheduleReconnect();
    });
  }

  grid.addEventListener("smallstack:resubscribe", (event) => {
    const keys = (event.detail && event.detail.keys) || [];
    wanted = (wanted || []).concat(keys);
    send(Object.assign({ type: "subscribe" }, scope));
  });

  // Come back at once when the network does, instead of waiting out the backoff.
  window.addEventListener("online", () => {
    if (!socket) { clearTimeout(retryTimer); attempt = 0; connect(); }
  });

  setState("connecting");
  connect();
})();
