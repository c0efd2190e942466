// SmallStack "Edit layout": reorder, hide, show and widen the cards of a dashboard page, saved
// per user and per page through the layout API. Plain JavaScript, no build step; dragging uses
// the vendored SortableJS (mouse, touch and pen alike).
//
// The page gives: the grid with data-layout-url, the layout as JSON in #dashboard-layout
// ({scope, order, hidden, spans}), the panel (#layout-panel) with the hidden cards' list and the
// #layout-announce live region. Every change is sent at once (PUT, debounced) and the server's
// normalised answer applied; a failed save keeps the page as the user left it and says so.
// Live pushes update cards in place (dashboard.js) and fire "smallstack:card-updated": the card
// then gets its width and, while editing, its controls back.
(function () {
  "use strict";

  const grid = document.querySelector("[data-layout-url]");
  const toggle = document.getElementById("layout-edit");
  const panel = document.getElementById("layout-panel");
  const source = document.getElementById("dashboard-layout");
  if (!grid || !toggle || !panel || !source) return;

  let initial;
  try { initial = JSON.parse(source.textContent); } catch (e) { return; }
  if (!initial || typeof initial.scope !== "string" || !Array.isArray(initial.order)) return;

  let defaultSpans = {};
  try {
    const node = document.getElementById("dashboard-default-spans");
    defaultSpans = (node && JSON.parse(node.textContent)) || {};
  } catch (e) { /* widths then stay as rendered */ }

  const url = grid.dataset.layoutUrl + "?scope=" + encodeURIComponent(initial.scope);
  const hiddenList = document.getElementById("layout-hidden-list");
  const hiddenNone = document.getElementById("layout-hidden-none");
  const statusNode = document.getElementById("layout-status");
  const errorBox = document.getElementById("layout-error");
  const errorText = document.getElementById("layout-error-text");
  const announcer = document.getElementById("layout-announce");
  const SAVE_DELAY = 250;  // ms: a burst of arrow-key moves is one PUT
  const FILL_TIMEOUT = 10000;  // ms a card shown again may take to arrive over the socket

  // The layout as this page has it: every key of the page in order, the hidden ones, the widths.
  const state = {
    order: initial.order.slice(),
    hidden: new Set(Array.isArray(initial.hidden) ? initial.hidden : []),
    spans: Object.assign({}, initial.spans || {}),
  };
  const titles = new Map();  // key -> card title, for the hidden list and announcements
  const detached = new Map();  // key -> card element hidden during this visit
  let editing = false;
  let dragged = null;
  let saveTimer = null;
  let saving = null;  // the PUT on its way, if any
  let dirty = false;  // changes not yet accepted by the server
  let version = 0;  // bumped on each change; a save's answer is applied only if none came since
  let savedHidden = new Set(state.hidden);  // the hidden keys the server has
  let orderAtDragStart = null;

  // -- reading the page --------------------------------------------------------------------

  function cards() {
    return Array.from(grid.children).filter((node) => node.matches(".card[data-key]"));
  }

  function cardFor(k) {
    return cards().find((card) => card.dataset.key === k) || null;
  }

  function titleOf(card) {
    const heading = card.querySelector(".card-title");
    const text = heading ? heading.textContent.trim() : "";
    return text || card.dataset.key;
  }

  function rememberTitles() {
    for (const card of cards()) titles.set(card.dataset.key, titleOf(card));
    for (const item of hiddenList.children) {
      const name = item.querySelector(".layout-hidden-name");
      if (name) titles.set(item.dataset.key, name.textContent.trim());
    }
  }

  // The full order from the cards' places on the page: visible keys take the slots visible keys
  // had, hidden keys keep theirs (a card shown again comes back where it was).
  function syncOrder() {
    const onPage = cards().map((card) => card.dataset.key);
    const present = new Set(onPage);
    const known = onPage.filter((k) => state.order.includes(k));
    const added = onPage.filter((k) => !state.order.includes(k));
    let next = 0;
    state.order = state.order.map((k) => (present.has(k) ? known[next++] : k)).concat(added);
  }

  // -- announcing, status, errors ----------------------------------------------------------

  function announce(message) {
    announcer.textContent = "";
    // A separate task, so that the same message twice is announced twice.
    setTimeout(() => { announcer.textContent = message; }, 50);
  }

  function setStatus(text) { statusNode.textContent = text; }

  function showError(message) {
    errorText.textContent = message;
    errorBox.hidden = false;
    setStatus("Not saved");
  }

  function clearError() { errorBox.hidden = true; errorText.textContent = ""; }

  async function problemOf(response) {
    let body = null;
    try { body = await response.json(); } catch (e) { /* not JSON */ }
    if (body && typeof body.detail === "string") return body.detail;
    if (body && typeof body.error === "string") return body.error;
    if (body && Array.isArray(body.detail) && body.detail.length) {
      return body.detail.map((item) => {
        const where = Array.isArray(item.loc) ? item.loc.filter((p) => p !== "body").join(".") : "";
        return (where ? where + ": " : "") + (item.msg || JSON.stringify(item));
      }).join("; ");
    }
    if (response.status === 401 || response.status === 403) return "not allowed (signed out?)";
    return "the server answered " + response.status;
  }

  // -- saving ------------------------------------------------------------------------------

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    const field = document.querySelector("input[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  function request(method, body, extra) {
    const headers = { "X-CSRFToken": csrfToken(), Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(url, Object.assign({
      method: method,
      headers: headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    }, extra || {}));
  }

  function payload() {
    return {
      scope: initial.scope,
      order: state.order.slice(),
      hidden: state.order.filter((k) => state.hidden.has(k))
        .concat(Array.from(state.hidden).filter((k) => !state.order.includes(k))),
      spans: Object.assign({}, state.spans),
    };
  }

  function changed() {
    version += 1;
    dirty = true;
    setStatus("Saving…");
    clearTimeout(saveTimer);
    saveTimer = setTimeout(save, SAVE_DELAY);
  }

  function save() {
    clearTimeout(saveTimer);
    if (saving || !dirty) return saving;
    saving = put().finally(() => { saving = null; });
    return saving;
  }

  async function put() {
    const sent = version;
    const body = payload();
    let answer = null;
    try {
      const response = await request("PUT", body);
      if (!response.ok) throw new Error(await problemOf(response));
      answer = await response.json();
    } catch (error) {
      const reason = error instanceof TypeError ? "the server could not be reached" : error.message;
      showError("The layout was not saved: " + reason + ". Your changes stay on this page.");
      return;
    }
    if (version === sent) {
      dirty = false;
      apply(answer);
      clearError();
      setStatus("Saved");
    } else {
      setTimeout(save, 0);  // changes made while this one was on its way
    }
    // The server sends this page's socket only the cards shown: when that set changed,
    // subscribe again, asking for the cards shown again.
    const hiddenNow = new Set(body.hidden);
    const shown = Array.from(savedHidden).filter((k) => !hiddenNow.has(k));
    if (shown.length || Array.from(hiddenNow).some((k) => !savedHidden.has(k))) {
      savedHidden = hiddenNow;
      grid.dispatchEvent(new CustomEvent("smallstack:resubscribe", { detail: { keys: shown } }));
    }
  }

  // Leaving the page with a change still unsent: send it anyway.
  window.addEventListener("pagehide", () => {
    if (!dirty || saving) return;
    try { request("PUT", payload(), { keepalive: true }); } catch (e) { /* best effort */ }
  });

  // The server's normalised layout: its order, hidden keys and widths become the page's.
  function apply(answer) {
    if (!answer || !Array.isArray(answer.order)) return;
    state.order = answer.order.slice();
    state.hidden = new Set(Array.isArray(answer.hidden) ? answer.hidden : []);
    state.spans = Object.assign({}, answer.spans || {});
    for (const card of cards()) {
      if (state.hidden.has(card.dataset.key)) detach(card);
    }
    // Cards the layout shows that this page does not (shown again in another window).
    const missing = state.order.filter((k) => !state.hidden.has(k) && !cardFor(k) && titles.has(k));
    for (const k of missing) place(k);
    const position = new Map(state.order.map((k, i) => [k, i]));
    const sorted = cards().slice().sort((a, b) => {
      const pa = position.has(a.dataset.key) ? position.get(a.dataset.key) : Infinity;
      const pb = position.has(b.dataset.key) ? position.get(b.dataset.key) : Infinity;
      return pa - pb;
    });
    const focused = document.activeElement;
    if (sorted.some((card, i) => card !== cards()[i])) {
      for (const card of sorted) grid.appendChild(card);
      if (focused && grid.contains(focused)) focused.focus();
    }
    for (const card of cards()) applyWidth(card);
    renderHiddenList();
    if (missing.length) {
      grid.dispatchEvent(new CustomEvent("smallstack:resubscribe", { detail: { keys: missing } }));
    }
  }

  // The user changed this page's layout in another window: the server tells the page's socket
  // (dashboard.js passes it on); take the saved layout unless this page has changes of its own.
  // (This page's own saves come back here too: the answer is then the layout it already has.)
  let changedElsewhere = false;  // while a card was being dragged here
  grid.addEventListener("smallstack:layout-changed", async () => {
    changedElsewhere = Boolean(dragged);
    if (dirty || saving || dragged) return;
    let answer;
    try {
      const response = await request("GET");
      if (!response.ok) return;
      answer = await response.json();
    } catch (e) {
      return;
    }
    if (dirty || saving || dragged) return;
    savedHidden = new Set(Array.isArray(answer.hidden) ? answer.hidden : []);
    apply(answer);
  });

  // -- cards: width and controls -------------------------------------------------------------

  // The layout's width for the card, else the widget's own (#dashboard-default-spans, for the
  // cards the page came with), else the card keeps the width it has (a pushed card's own).
  function applyWidth(card) {
    let span = state.spans[card.dataset.key];
    if (span !== 1 && span !== 2) span = defaultSpans[card.dataset.key];
    if (span === 1 || span === 2) card.classList.toggle("wide", span === 2);
    const button = card.querySelector("[data-layout-action=span]");
    if (button) labelSpanButton(button, card);
  }

  function labelSpanButton(button, card) {
    const wide = card.classList.contains("wide");
    button.textContent = wide ? "Normal" : "Wide";
    button.setAttribute("aria-label", (wide ? "Make normal width: " : "Make wide: ") + titleOf(card));
  }

  function button(action, text, label) {
    const node = document.createElement("button");
    node.type = "button";
    node.dataset.layoutAction = action;
    node.textContent = text;
    node.setAttribute("aria-label", label);
    return node;
  }

  function decorate(card) {
    card.tabIndex = 0;
    card.setAttribute("aria-describedby", "layout-help");
    if (card.querySelector(":scope > .card-edit")) return applyWidth(card);
    const title = titleOf(card);
    const bar = document.createElement("div");
    bar.className = "card-edit";
    bar.setAttribute("data-card-keep", "");
    const handle = document.createElement("span");
    handle.className = "card-drag";
    handle.title = "Drag to move";
    handle.setAttribute("aria-hidden", "true");
    handle.textContent = "⠿";
    bar.append(handle, button("hide", "Hide", "Hide " + title), button("span", "Wide", ""));
    card.prepend(bar);
    applyWidth(card);
  }

  function undecorate(card) {
    card.removeAttribute("tabindex");
    card.removeAttribute("aria-describedby");
    const bar = card.querySelector(":scope > .card-edit");
    if (bar) bar.remove();
  }

  grid.addEventListener("smallstack:card-updated", (event) => {
    const card = event.detail && event.detail.card;
    if (!card) return;
    titles.set(card.dataset.key, titleOf(card));
    if (editing) decorate(card); else applyWidth(card);
    if (card === dragged) card.classList.add("is-drag-chosen", "is-drag-ghost");
  });

  // -- moving ------------------------------------------------------------------------------

  function announceMove(card) {
    const all = cards();
    announce(titleOf(card) + " moved to position " + (all.indexOf(card) + 1) + " of " + all.length);
  }

  function moveTo(card, index) {
    const all = cards();
    const from = all.indexOf(card);
    const to = Math.max(0, Math.min(all.length - 1, index));
    if (to === from) {
      announce(titleOf(card) + " is at position " + (from + 1) + " of " + all.length);
      return;
    }
    const rest = all.filter((c) => c !== card);
    if (to < rest.length) grid.insertBefore(card, rest[to]); else rest[rest.length - 1].after(card);
    card.focus();
    announceMove(card);
    syncOrder();
    changed();
  }

  const KEY_STEPS = { ArrowLeft: -1, ArrowUp: -1, ArrowRight: 1, ArrowDown: 1 };

  grid.addEventListener("keydown", (event) => {
    if (!editing || event.altKey || event.ctrlKey || event.metaKey) return;
    const card = event.target;
    if (!card.matches || !card.matches(".card[data-key]") || card.parentNode !== grid) return;
    const index = cards().indexOf(card);
    if (event.key in KEY_STEPS) moveTo(card, index + KEY_STEPS[event.key]);
    else if (event.key === "Home") moveTo(card, 0);
    else if (event.key === "End") moveTo(card, cards().length - 1);
    else return;
    event.preventDefault();
  });

  let sortable = null;
  if (window.Sortable) {
    sortable = window.Sortable.create(grid, {
      draggable: ".card[data-key]",
      handle: ".card-drag",
      forceFallback: true,  // pointer events for mouse, touch and pen alike
      fallbackOnBody: true,  // the dragged copy lives outside the grid
      animation: window.matchMedia("(prefers-reduced-motion: reduce)").matches ? 0 : 150,
      disabled: true,
      ghostClass: "is-drag-ghost",
      chosenClass: "is-drag-chosen",
      dragClass: "is-drag-copy",
      onStart: (event) => {
        dragged = event.item;
        orderAtDragStart = cards().map((card) => card.dataset.key).join("\n");
      },
      onEnd: (event) => {
        dragged = null;
        if (cards().map((card) => card.dataset.key).join("\n") === orderAtDragStart) {
          if (changedElsewhere) grid.dispatchEvent(new CustomEvent("smallstack:layout-changed"));
          return;
        }
        announceMove(event.item);
        syncOrder();
        changed();
      },
    });
  }

  // -- hiding and showing --------------------------------------------------------------------

  function detach(card) {
    detached.set(card.dataset.key, card);
    undecorate(card);
    card.remove();
  }

  function hide(card) {
    const all = cards();
    const index = all.indexOf(card);
    const k = card.dataset.key;
    syncOrder();
    state.hidden.add(k);
    detach(card);
    renderHiddenList();
    const rest = cards();
    const next = rest[Math.min(index, rest.length - 1)];
    if (next) next.focus(); else focusShowButton(k);
    announce(titles.get(k) + " hidden; " + state.hidden.size + " hidden in all");
    changed();
  }

  function placeholderFor(k) {
    // Built with textContent: the title is data.
    const card = document.createElement("article");
    card.className = "card placeholder";
    card.dataset.key = k;
    card.dataset.state = "pending";
    card.setAttribute("aria-busy", "true");
    const head = document.createElement("header");
    head.className = "card-head";
    const title = document.createElement("h2");
    title.className = "card-title";
    title.textContent = titles.get(k) || k;
    head.append(title);
    const headline = document.createElement("p");
    headline.className = "headline";
    headline.textContent = "Loading…";
    const detail = document.createElement("p");
    detail.className = "detail";
    detail.textContent = "shown again";
    card.append(head, headline, detail);
    setTimeout(() => {
      if (card.dataset.state === "pending" && card.isConnected) {
        detail.textContent = "reload the page to see this card";
      }
    }, FILL_TIMEOUT);
    return card;
  }

  // Puts k's card back on the page where the order has it: before the first card after it that
  // is on the page. The card hidden during this visit, or a placeholder the socket fills in.
  function place(k) {
    const card = detached.get(k) || placeholderFor(k);
    detached.delete(k);
    if (!state.order.includes(k)) state.order.push(k);
    const after = state.order.slice(state.order.indexOf(k) + 1);
    const before = after.map(cardFor).find(Boolean);
    const empty = grid.querySelector(":scope > .empty");
    if (empty) empty.remove();
    if (before) grid.insertBefore(card, before); else grid.appendChild(card);
    if (editing) decorate(card); else applyWidth(card);
    return card;
  }

  function show(k) {
    state.hidden.delete(k);
    const card = place(k);
    renderHiddenList();
    card.focus();
    announce(titleOf(card) + " shown at position " + (cards().indexOf(card) + 1) + " of " + cards().length);
    changed();
  }

  function renderHiddenList() {
    const keys = state.order.filter((k) => state.hidden.has(k))
      .concat(Array.from(state.hidden).filter((k) => !state.order.includes(k)));
    const listed = Array.from(hiddenList.children).map((item) => item.dataset.key);
    if (listed.join("\n") === keys.join("\n")) return;  // unchanged (a focused button stays)
    hiddenList.replaceChildren(...keys.map((k) => {
      const item = document.createElement("li");
      item.dataset.key = k;
      const name = document.createElement("span");
      name.className = "layout-hidden-name";
      name.textContent = titles.get(k) || k;
      const showButton = document.createElement("button");
      showButton.type = "button";
      showButton.setAttribute("data-layout-show", "");
      showButton.setAttribute("aria-label", "Show " + (titles.get(k) || k));
      showButton.textContent = "Show";
      item.append(name, " ", showButton);
      return item;
    }));
    hiddenNone.hidden = keys.length > 0;
  }

  function focusShowButton(k) {
    const item = Array.from(hiddenList.children).find((li) => li.dataset.key === k);
    const target = item && item.querySelector("button");
    if (target) target.focus();
  }

  hiddenList.addEventListener("click", (event) => {
    const target = event.target.closest("[data-layout-show]");
    if (target) show(target.closest("li").dataset.key);
  });

  // -- the card controls, and links that must not navigate while editing ----------------------

  grid.addEventListener("click", (event) => {
    if (!editing) return;
    const control = event.target.closest("[data-layout-action]");
    const card = event.target.closest(".card[data-key]");
    if (control && card) {
      event.preventDefault();
      if (control.dataset.layoutAction === "hide") return hide(card);
      const wide = !card.classList.contains("wide");
      state.spans[card.dataset.key] = wide ? 2 : 1;
      applyWidth(card);
      announce(titleOf(card) + (wide ? " is now wide" : " is now normal width"));
      return changed();
    }
    if (event.target.closest("a")) event.preventDefault();
  }, true);

  // -- entering and leaving the mode -----------------------------------------------------------

  function setEditing(on) {
    editing = on;
    grid.classList.toggle("is-editing", on);
    panel.hidden = !on;
    toggle.setAttribute("aria-pressed", String(on));
    for (const card of cards()) (on ? decorate : undecorate)(card);
    if (sortable) sortable.option("disabled", !on);
    if (!on && dirty) save();
  }

  toggle.addEventListener("click", () => setEditing(!editing));
  document.getElementById("layout-done").addEventListener("click", () => {
    setEditing(false);
    toggle.focus();
  });
  document.getElementById("layout-retry").addEventListener("click", () => { dirty = true; save(); });
  document.addEventListener("keydown", (event) => {
    if (editing && event.key === "Escape" && !dragged) {
      setEditing(false);
      toggle.focus();
    }
  });

  document.getElementById("layout-reset").addEventListener("click", async () => {
    clearTimeout(saveTimer);
    dirty = false;
    version += 1;  // an answer still on its way must not put the old layout back
    setStatus("Resetting…");
    if (saving) await saving;  // its PUT must not land after the DELETE
    try {
      const response = await request("DELETE");
      if (!response.ok) throw new Error(await problemOf(response));
    } catch (error) {
      const reason = error instanceof TypeError ? "the server could not be reached" : error.message;
      dirty = true;
      showError("The layout was not reset: " + reason + ".");
      return;
    }
    location.reload();
  });

  rememberTitles();
  for (const card of cards()) applyWidth(card);
  toggle.hidden = false;
})();
